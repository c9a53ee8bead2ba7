"""Deliveries reach real receivers signed per Standard Webhooks, at least once through failures,
until the retry window ends and the endpoint is disabled with its owner told."""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid

import orjson
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from billfold.platform.errors import NotFound
from billfold.webhooks import deliveries, endpoints
from billfold.webhooks.dispatch import backoff_s
from tests.webhooks.conftest import (
    Answer,
    Received,
    always,
    deliveries_of,
    receiving,
    register,
    tell,
    until,
)
from tests.world import World


def verified(secret: str, received: Received) -> dict[str, object]:
    """The body, if its signature verifies with `secret` (standardwebhooks raises if not)."""
    body: dict[str, object] = Webhook(secret).verify(received.body, received.headers)
    return body


async def test_an_event_is_delivered_signed_to_its_owner_only(world: World) -> None:
    """The owner's endpoint gets the event of a kind it asked for, once, as the CloudEvent,
    `webhook-id` its id, its signature verified by standardwebhooks with the secret shown at
    registration; not the kinds it did not ask for, nor another person's events."""
    owner, stranger = await world.person(), await world.person()
    with receiving(always(204)) as receiver:
        endpoint = await register(world, owner.id, receiver.url, ["funding.settled"])
        await tell(world, "funding.pending", {"user_id": str(owner.id)})
        await tell(world, "funding.settled", {"user_id": str(stranger.id)})
        event = await tell(world, "funding.settled", {"user_id": str(owner.id), "amount": "1.00"})
        assert await receiver.wait(lambda r: len(r.received) >= 1)
        shown = await until(lambda: _delivered(world, owner.id, endpoint["endpoint_id"]))
        await asyncio.sleep(0.3)  # time for anything else wrongly sent
    assert len(receiver.received) == 1
    received = receiver.received[0]
    body = verified(endpoint["secret"], received)
    assert body["id"] == received.headers["webhook-id"] == str(event.id)
    assert body["type"] == "billfold.funding.settled.v1"
    assert body["data"] == {"user_id": str(owner.id), "amount": "1.00"}
    assert received.headers["content-type"] == "application/json"
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(received.body, received.headers)
    assert [d["event_type"] for d in shown] == ["funding.settled"]
    attempt = shown[0]["attempts"][0]
    assert (attempt["status_code"], attempt["error"]) == (204, None)
    assert attempt["duration_ms"] >= 0


async def _delivered(world: World, owner: uuid.UUID, endpoint_id: str) -> list[dict[str, object]]:
    found = await deliveries_of(world, owner, endpoint_id)
    return found if found and all(d["status"] == "delivered" for d in found) else []


async def test_a_transfer_is_delivered_to_both_its_people(world: World) -> None:
    """transfer.completed concerns its sender and its recipient: each one's endpoint gets it."""
    alice, bob = await world.person(), await world.person()
    with receiving(always(200)) as receiver:
        for person in (alice, bob):
            await register(world, person.id, receiver.url, ["transfer.completed"])
        data = {"transfer_id": "1", "from_user_id": str(alice.id), "to_user_id": str(bob.id)}
        event = await tell(world, "transfer.completed", data)
        assert await receiver.wait(lambda r: len(r.delivered()) >= 2)
    assert {r.headers["webhook-id"] for r in receiver.received} == {str(event.id)}


async def test_a_receiver_failing_half_the_time_gets_every_event(world: World) -> None:
    """A receiver that answers 500 a quarter of the time and closes the connection unanswered
    another quarter still gets every one of 20 events, each verified, through retries; every
    failed attempt is recorded with its status or error."""
    owner = await world.person()
    chance = random.Random(27)
    lock = threading.Lock()

    def flaky() -> int | None:
        with lock:
            roll = chance.random()
        return 500 if roll < 0.25 else None if roll < 0.5 else 204

    with receiving(flaky) as receiver:
        endpoint = await register(world, owner.id, receiver.url)
        events = [await tell(world, "user.frozen", {"user_id": str(owner.id)}) for _ in range(20)]
        wanted = {str(e.id) for e in events}

        def all_in(r: object) -> bool:
            return wanted <= {d.headers["webhook-id"] for d in receiver.delivered()}

        assert await receiver.wait(all_in), "not every event was delivered within the time"
        shown = await until(lambda: _delivered(world, owner.id, endpoint["endpoint_id"]))
    for received in receiver.delivered():
        verified(endpoint["secret"], received)
    answers = [r.answered for r in receiver.received]
    closed = [r for r in receiver.received if r.closed]
    assert 500 in answers and closed, "the receiver never failed: nothing was retried"
    attempts = [a for d in shown for a in d["attempts"]]
    assert len(attempts) == len(receiver.received)
    assert {a["status_code"] for a in attempts} >= {500, 204, None}
    assert all(a["error"] for a in attempts if a["status_code"] is None)
    assert len(shown) == 20


async def test_an_endpoint_failing_for_the_whole_window_is_disabled_and_its_owner_told(
    world: World,
) -> None:
    """A receiver that always answers 503: the delivery is retried until the window ends (4 s
    here), then given up; the endpoint is disabled and webhook.endpoint.disabled, written with
    it, reaches the owner's other endpoint. Resending to the disabled endpoint is refused."""
    owner = await world.person()
    with receiving(always(503), "/hook?token=s3cret") as failing, receiving(always(204)) as told:
        broken = await register(world, owner.id, failing.url)
        watcher = await register(world, owner.id, told.url, ["webhook.endpoint.disabled"])
        started = time.monotonic()
        await tell(world, "debt.opened", {"user_id": str(owner.id)})
        assert await told.wait(lambda r: len(r.delivered()) >= 1), "the owner was not told"
        took_s = time.monotonic() - started
    pool = world.state.pool
    state = await endpoints.get_endpoint(pool, owner.id, broken["endpoint_id"])
    assert state["enabled"] is False and state["disabled_at"] and state["failing_since"]
    assert took_s >= 4.0
    event = verified(watcher["secret"], told.delivered()[0])
    assert event["type"] == "billfold.webhook.endpoint.disabled.v1"
    assert event["subject"] == f"webhook-endpoint/{broken['endpoint_id']}"
    assert event["data"] == {
        "endpoint_id": broken["endpoint_id"],
        "user_id": str(owner.id),
        "url": failing.url.partition("?")[0],
        "failing_since": state["failing_since"],
    }
    [gave_up] = await deliveries_of(world, owner.id, broken["endpoint_id"])
    assert gave_up["status"] == "failed" and gave_up["next_attempt_at"] is None
    assert gave_up["attempt_count"] == len(failing.received) >= 3
    assert {a["status_code"] for a in gave_up["attempts"]} == {503}
    with pytest.raises(endpoints.EndpointDisabled):
        await deliveries.do_resend_delivery(
            pool, owner.id, broken["endpoint_id"], gave_up["delivery_id"]
        )


async def test_a_resend_delivers_again(world: World) -> None:
    """Resending a delivered event sends it again, the same webhook-id and body, now, and
    records the attempt beside the first; another person cannot resend it."""
    owner, stranger = await world.person(), await world.person()
    with receiving(always(202)) as receiver:
        endpoint = await register(world, owner.id, receiver.url)
        await tell(world, "user.unfrozen", {"user_id": str(owner.id)})
        [first] = await until(lambda: _delivered(world, owner.id, endpoint["endpoint_id"]))
        pool = world.state.pool
        with pytest.raises(NotFound):
            await deliveries.do_resend_delivery(
                pool, stranger.id, endpoint["endpoint_id"], first["delivery_id"]
            )
        again = await deliveries.do_resend_delivery(
            pool, owner.id, endpoint["endpoint_id"], first["delivery_id"]
        )
        assert again["status"] == "pending"
        assert await receiver.wait(lambda r: len(r.delivered()) >= 2)
        [resent] = await until(lambda: _delivered(world, owner.id, endpoint["endpoint_id"]))
    one, two = receiver.received
    assert one.headers["webhook-id"] == two.headers["webhook-id"] and one.body == two.body
    assert resent["attempt_count"] == 2 and len(resent["attempts"]) == 2


async def test_after_a_rotation_both_secrets_sign_until_the_grace_ends(world: World) -> None:
    """A rotated endpoint's deliveries carry two signatures, one verifying with the new secret,
    one with the old; once the old one's grace has ended, only the new one signs."""
    owner = await world.person()
    with receiving(always(204)) as receiver:
        endpoint = await register(world, owner.id, receiver.url)
        hooks = world.state.webhooks
        rotated = await endpoints.do_rotate_secret(hooks, owner.id, endpoint["endpoint_id"])
        assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]
        await tell(world, "user.frozen", {"user_id": str(owner.id)})
        assert await receiver.wait(lambda r: len(r.delivered()) >= 1)
        await world.state.pool.execute(
            """UPDATE webhook_endpoints SET previous_expires_at = now() - interval '1 s'
                WHERE id = $1""",
            uuid.UUID(endpoint["endpoint_id"]),
        )
        await tell(world, "user.unfrozen", {"user_id": str(owner.id)})
        assert await receiver.wait(lambda r: len(r.delivered()) >= 2)
    during, after = receiver.received
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    verified(rotated["secret"], during)
    verified(endpoint["secret"], during)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    verified(rotated["secret"], after)
    with pytest.raises(WebhookVerificationError):
        verified(endpoint["secret"], after)


async def test_a_hanging_receiver_is_given_up_on_and_money_still_moves(world: World) -> None:
    """A receiver that takes 3 s to answer: each attempt ends at the 1 s limit, recorded as no
    answer; meanwhile transfers go through in well under a second each."""
    owner, payee = await world.person(10_000), await world.person()

    def hang() -> int:
        time.sleep(3)
        return 204

    answer: Answer = hang
    with receiving(answer) as receiver:
        endpoint = await register(world, owner.id, receiver.url)
        for _ in range(5):
            await tell(world, "user.frozen", {"user_id": str(owner.id)})
        assert await receiver.wait(lambda r: len(r.received) >= 5)
        took = []
        for _ in range(5):
            started = time.monotonic()
            await world.send(owner, payee, "1.00")
            took.append(time.monotonic() - started)

        async def timed_out() -> list[dict[str, object]]:
            shown = await deliveries_of(world, owner.id, endpoint["endpoint_id"])
            return [a for d in shown for a in d["attempts"] if a["error"]]

        attempts = await until(timed_out)
    assert max(took) < 1.0, took
    assert attempts, "no attempt was recorded as unanswered"
    assert all(a["error"] == "no answer within 1 s" for a in attempts)
    assert all(900 <= a["duration_ms"] < 2500 for a in attempts)


async def test_an_ach_return_is_delivered_to_the_owner(world: World) -> None:
    """End to end: an ACH add-funds returned with R01 is told to the owner's endpoint as a
    funding.returned delivery, signed and verifiable, with the return code."""
    owner, bank = await world.person_with_bank("000123456789")
    with receiving(always(204)) as receiver:
        endpoint = await register(world, owner.id, receiver.url, ["funding.returned"])
        added = await world.add_funds(owner, "25.00", bank=bank)
        outcome = await world.partner(owner, "ach.returned", added, return_code="R01")
        assert outcome.status == "applied", outcome
        assert await receiver.wait(lambda r: len(r.delivered()) >= 1)
    event = verified(endpoint["secret"], receiver.received[0])
    assert event["type"] == "billfold.funding.returned.v1"
    data = event["data"]
    assert isinstance(data, dict)
    assert (data["funding_id"], data["return_code"]) == (str(added.id), "R01")
    assert "000123456789" not in orjson.dumps(event).decode()


def test_the_backoff_grows_with_full_jitter_up_to_its_ceiling() -> None:
    """Each wait is drawn between zero and the first wait doubled per failure, capped."""
    waits = [backoff_s(failures, 5.0, 60.0) for failures in (1, 2, 3, 4, 5) for _ in range(200)]
    assert all(0 <= w <= 60.0 for w in waits)
    assert max(waits[:200]) <= 5.0 < max(waits[200:400]) <= 10.0
    assert max(waits[800:]) > 40.0
    assert backoff_s(10_000, 5.0, 60.0) <= 60.0


async def test_a_paused_endpoint_resumes_its_pending_deliveries(world: World) -> None:
    """Disabled by its owner while a delivery is being retried, an endpoint gets nothing; once
    enabled again (the receiver mended), the delivery goes through with a fresh window."""
    owner = await world.person()
    pool = world.state.pool
    with receiving(always(500)) as receiver:
        endpoint = await register(world, owner.id, receiver.url)
        await tell(world, "debt.recovered", {"user_id": str(owner.id)})
        assert await receiver.wait(lambda r: len(r.received) >= 2)
        pause = endpoints.EndpointChange(None, None, None, enabled=False)
        await endpoints.do_update_endpoint(pool, owner.id, endpoint["endpoint_id"], pause)
        await asyncio.sleep(0.5)  # an attempt under way when it was paused ends meanwhile
        tried = len(receiver.received)
        receiver.answer = always(204)
        await asyncio.sleep(4.5)  # past the retry window: paused, the delivery was not given up
        assert len(receiver.received) == tried
        [paused] = await deliveries_of(world, owner.id, endpoint["endpoint_id"])
        assert paused["status"] == "pending"
        resume = endpoints.EndpointChange(None, None, None, enabled=True)
        await endpoints.do_update_endpoint(pool, owner.id, endpoint["endpoint_id"], resume)
        assert await receiver.wait(lambda r: len(r.delivered()) == 1)
        [done] = await until(lambda: _delivered(world, owner.id, endpoint["endpoint_id"]))
    assert done["attempts"][-1]["status_code"] == 204
    state = await endpoints.get_endpoint(pool, owner.id, endpoint["endpoint_id"])
    assert state["enabled"] is True and state["failing_since"] is None
