"""Add-funds and cash-outs the risk engine holds: recorded but not released to their rail until
the user's PIN or an operator's approval; declined by three wrong PINs or a rejection; released
or declined exactly once. The ledger reconciles after every scenario."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billfold.config import Settings
from billfold.funding.reconcile import check_funding
from billfold.funding.recovery import book_unbooked
from billfold.ledger.reconcile import reconcile
from billfold.wallet.users import grant_admin
from tests.api.driver import decide, set_pin, verify
from tests.world import billfold

Person = Any
MakePerson = Callable[..., Awaitable[Any]]
LinkBank = Callable[..., Awaitable[str]]
PIN = "2468"
# The user is known on their home phone, in the US. A new phone is a weak signal: step-up. A
# phone three other accounts act from (a farm's), for an account days old, a strong one: review.
# Devices are named here; `start` sends the person's device token for the name (Person.device).
STEP_UP = {"X-Device-Id": "new-phone", "X-Client-Country": "US"}
FARM_PHONE = "farm-phone"
REVIEW = {"X-Device-Id": FARM_PHONE, "X-Client-Country": "US"}
KINDS = ["cash_out", "ach_add_funds", "card_add_funds"]


@pytest.fixture(scope="module")
def settings(isolated_settings: Settings) -> Settings:
    """The app here runs on a database of its own: `billfold ach export` sends every pending
    entry in the database, and other modules leave entries sealed under keys only they hold."""
    return isolated_settings


@pytest.fixture(scope="module", autouse=True)
async def farm_phone(app: FastAPI, make_person: MakePerson) -> None:
    """Three other accounts already act from FARM_PHONE."""
    for _ in range(3):
        other = await make_person()
        await app.state.pool.execute(
            "INSERT INTO user_devices (user_id, device_id) VALUES ($1, $2)",
            uuid.UUID(other.user_id),
            FARM_PHONE,
        )


@pytest.fixture(autouse=True)
async def ledger_reconciles(app: FastAPI) -> AsyncIterator[None]:
    """After every test: the ledger reconciles, and every movement's status matches it."""
    yield
    report = await reconcile(app.state.pool)
    assert report.ok, report.render()
    assert await check_funding(app.state.pool) == []


@pytest.fixture
def ready(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: LinkBank,
    add_card: Callable[[Person, str], Awaitable[str]],
) -> Callable[[str], Awaitable[tuple[Person, str, dict[str, str]]]]:
    """A person known at home (they signed up on their home phone), with a PIN, $100 and a
    verified bank account (and a card for a card add-funds); gives them, the path and the
    source of a movement of `kind`."""

    async def make(kind: str, card_number: str = "4242424242424242") -> tuple[Person, str, Any]:
        person = await make_person("100.00")
        user_id = uuid.UUID(person.user_id)
        await app.state.pool.execute(
            "INSERT INTO user_countries (user_id, country) VALUES ($1, 'US')", user_id
        )
        await set_pin(client, person, pin=PIN, password=person.password)
        source = {"bank_account_id": await link_bank(person, "31415926")}
        if kind == "card_add_funds":
            source = {"card_id": await add_card(person, card_number)}
        return person, "cash-out" if kind == "cash_out" else "add-funds", source

    return make


async def start(
    client: httpx.AsyncClient,
    person: Person,
    path: str,
    amount: str,
    source: dict[str, str],
    origin: dict[str, str],
    key: str | None = None,
) -> httpx.Response:
    if "X-Device-Id" in origin:
        name = origin["X-Device-Id"]
        origin = {**origin, "X-Device-Id": person.device(name, own=name != FARM_PHONE)}
    return await client.post(
        f"/api/v1/wallet/{path}",
        json={"user_id": person.user_id, "amount": amount, **source},
        headers={**person.auth, **origin, "Idempotency-Key": key or uuid.uuid4().hex},
    )


async def money(client: httpx.AsyncClient, person: Person) -> tuple[str, str, str]:
    body = (await client.get(f"/api/v1/wallet/{person.user_id}", headers=person.auth)).json()
    return body["balance"], body["available_balance"], body["pending_balance"]


async def shown(client: httpx.AsyncClient, person: Person, funding_id: str) -> str:
    movement = await client.get(f"/api/v1/funding/{funding_id}", headers=person.auth)
    assert movement.status_code == 200, movement.text
    status: str = movement.json()["status"]
    return status


async def settle(client: httpx.AsyncClient, person: Person, funding_id: str) -> str:
    answer = await client.post(f"/api/v1/sandbox/ach/{funding_id}/settle", headers=person.auth)
    assert answer.status_code == 200, answer.text
    status: str = answer.json()["status"]
    return status


async def charges(app: FastAPI, person: Person, key: str) -> int:
    """Approved charges the sandbox processor made for this add-funds request."""
    count: int = await app.state.pool.fetchval(
        "SELECT count(*) FROM sandbox_card_charges WHERE idempotency_key = $1 AND approved",
        f"{person.user_id}:{key}",
    )
    return count


def export(settings: Settings, out: Path) -> str:
    """`billfold ach export` to `out`; the file's text ('' when there was nothing to send)."""
    done = billfold(settings, "ach", "export", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out.read_text() if out.exists() else ""


async def trace_of(app: FastAPI, funding_id: str) -> str:
    trace: str = await app.state.pool.fetchval(
        "SELECT trace_number FROM funding_transfers WHERE id = $1", uuid.UUID(funding_id)
    )
    return trace


async def test_a_stepped_up_cash_out_is_reserved_but_not_sent_until_the_right_pin(
    app: FastAPI,
    client: httpx.AsyncClient,
    ready: Callable[..., Awaitable[Any]],
    settings: Settings,
    tmp_path: Path,
) -> None:
    """From a new phone: 202 PENDING_VERIFICATION, the money reserved at once; a replay answers
    the same; neither the export nor a settle webhook sends it; a wrong PIN says what is left;
    the right one releases it to the next file, and it then settles as any cash-out."""
    person, path, source = await ready("cash_out")
    key = uuid.uuid4().hex
    held = await start(client, person, path, "30.00", source, STEP_UP, key)
    assert held.status_code == 202 and held.json()["status"] == "PENDING_VERIFICATION"
    funding_id = held.json()["transfer_id"]
    assert await money(client, person) == ("100.00", "70.00", "0.00")
    again = await start(client, person, path, "30.00", source, STEP_UP, key)
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (202, "true")
    assert (again.json()["transfer_id"], again.json()["status"]) == (
        funding_id,
        "PENDING_VERIFICATION",
    )
    assert await shown(client, person, funding_id) == "PENDING_VERIFICATION"
    trace = await trace_of(app, funding_id)
    assert trace not in export(settings, tmp_path / "before.ach")
    assert await settle(client, person, funding_id) == "refused"
    wrong = await verify(client, person, funding_id, "0000")
    assert wrong.status_code == 403 and wrong.json()["code"] == "wrong_pin"
    assert (wrong.json()["attempts_left"], wrong.json()["transfer_status"]) == (
        2,
        "PENDING_VERIFICATION",
    )
    right = await verify(client, person, funding_id, PIN)
    assert right.status_code == 200 and right.json()["status"] == "PENDING"
    assert (await verify(client, person, funding_id, PIN)).status_code == 409
    assert trace in export(settings, tmp_path / "after.ach")
    assert trace not in export(settings, tmp_path / "later.ach")
    assert await settle(client, person, funding_id) == "applied"
    assert await money(client, person) == ("70.00", "70.00", "0.00")
    assert await shown(client, person, funding_id) == "COMPLETED"


async def told(app: FastAPI, funding_id: str) -> list[tuple[str, str | None]]:
    """The types and reasons of the events told of a movement, from the outbox, in order."""
    rows = await app.state.pool.fetch(
        "SELECT type, data->>'reason' AS reason FROM outbox WHERE subject = $1 ORDER BY id",
        f"funding/{funding_id}",
    )
    return [(r["type"].removeprefix("billfold.").rsplit(".v", 1)[0], r["reason"]) for r in rows]


async def test_three_wrong_pins_decline_a_cash_out_and_give_the_money_back(
    app: FastAPI, client: httpx.AsyncClient, ready: Callable[..., Awaitable[Any]]
) -> None:
    """The third wrong PIN declines it: the hold voided, the money spendable again, told as
    cashout.declined (wrong_pin); a replay, a settle and a fourth PIN change nothing."""
    person, path, source = await ready("cash_out")
    key = uuid.uuid4().hex
    funding_id = (await start(client, person, path, "45.00", source, STEP_UP, key)).json()[
        "transfer_id"
    ]
    answers = [await verify(client, person, funding_id, "9999") for _ in range(3)]
    assert [a.json()["attempts_left"] for a in answers] == [2, 1, 0]
    assert answers[-1].json()["transfer_status"] == "DECLINED"
    assert await money(client, person) == ("100.00", "100.00", "0.00")
    assert await shown(client, person, funding_id) == "DECLINED"
    replay = await start(client, person, path, "45.00", source, STEP_UP, key)
    assert replay.json()["status"] == "DECLINED"
    assert await settle(client, person, funding_id) == "refused"
    late = await verify(client, person, funding_id, PIN)
    assert late.status_code == 409 and late.json()["transfer_status"] == "DECLINED"
    assert await money(client, person) == ("100.00", "100.00", "0.00")
    assert await told(app, funding_id) == [
        ("cashout.requested", None),
        ("cashout.declined", "wrong_pin"),
    ]


async def test_a_stepped_up_ach_add_funds_books_nothing_until_the_right_pin(
    app: FastAPI,
    client: httpx.AsyncClient,
    ready: Callable[..., Awaitable[Any]],
    settings: Settings,
    tmp_path: Path,
) -> None:
    """Held: no pending money, not in the file, a settle refused. Released: booked as any
    add-funds (pending until it settles), in the next file. Another, declined by three wrong
    PINs, never reaches the ledger."""
    person, path, source = await ready("ach_add_funds")
    held = await start(client, person, path, "40.00", source, STEP_UP)
    assert held.status_code == 202 and held.json()["status"] == "PENDING_VERIFICATION"
    funding_id = held.json()["transfer_id"]
    assert await money(client, person) == ("100.00", "100.00", "0.00")
    trace = await trace_of(app, funding_id)
    assert trace not in export(settings, tmp_path / "before.ach")
    assert await settle(client, person, funding_id) == "refused"
    released = await verify(client, person, funding_id, PIN)
    assert released.status_code == 200 and released.json()["status"] == "PENDING"
    assert await money(client, person) == ("100.00", "100.00", "40.00")
    assert trace in export(settings, tmp_path / "after.ach")
    assert await settle(client, person, funding_id) == "applied"
    assert await money(client, person) == ("140.00", "140.00", "0.00")
    # The new phone is known since the right PIN; a tablet is new: a second factor again.
    tablet = {"X-Device-Id": "tablet", "X-Client-Country": "US"}
    declined = await start(client, person, path, "15.00", source, tablet)
    other = declined.json()["transfer_id"]
    answers = [await verify(client, person, other, "1357") for _ in range(3)]
    assert answers[-1].json()["transfer_status"] == "DECLINED"
    assert await money(client, person) == ("140.00", "140.00", "0.00")
    assert await shown(client, person, other) == "DECLINED"


async def test_a_stepped_up_card_add_funds_is_charged_once_when_released_and_never_if_not(
    app: FastAPI, client: httpx.AsyncClient, ready: Callable[..., Awaitable[Any]]
) -> None:
    """Held: the card not charged. Two right PINs at once: one releases it, the card is charged
    once (the fee on top) and the wallet credited; a replay is the completed movement. Another,
    declined by three wrong PINs, is never charged."""
    person, path, source = await ready("card_add_funds")
    key = uuid.uuid4().hex
    held = await start(client, person, path, "20.00", source, STEP_UP, key)
    assert held.status_code == 202 and held.json()["status"] == "PENDING_VERIFICATION"
    funding_id = held.json()["transfer_id"]
    assert await charges(app, person, key) == 0
    both = await asyncio.gather(*(verify(client, person, funding_id, PIN) for _ in range(2)))
    assert sorted(b.status_code for b in both) == [200, 409]
    winner = next(b for b in both if b.status_code == 200)
    assert (winner.json()["status"], winner.json()["fee"]) == ("COMPLETED", "0.60")
    assert await charges(app, person, key) == 1
    assert await money(client, person) == ("120.00", "120.00", "0.00")
    replay = await start(client, person, path, "20.00", source, STEP_UP, key)
    assert (replay.status_code, replay.json()["status"]) == (201, "COMPLETED")
    assert await charges(app, person, key) == 1
    other_key = uuid.uuid4().hex
    other = await start(client, person, path, "20.00", source, {"X-Device-Id": "tablet"}, other_key)
    answers = [await verify(client, person, other.json()["transfer_id"], "1") for _ in range(3)]
    assert answers[-1].json()["transfer_status"] == "DECLINED"
    assert await charges(app, person, other_key) == 0
    assert await money(client, person) == ("120.00", "120.00", "0.00")


async def test_a_card_the_processor_declines_at_release_declines_the_add_funds(
    app: FastAPI, client: httpx.AsyncClient, ready: Callable[..., Awaitable[Any]]
) -> None:
    """Released with the right PIN, a card that declines: 402 card_declined naming the
    movement DECLINED, told as funding.declined (card_declined); nothing reaches the wallet."""
    person, path, source = await ready("card_add_funds", card_number="4000000000000002")
    funding_id = (await start(client, person, path, "25.00", source, STEP_UP)).json()["transfer_id"]
    refused = await verify(client, person, funding_id, PIN)
    assert refused.status_code == 402 and refused.json()["code"] == "card_declined"
    assert refused.json()["transfer_status"] == "DECLINED"
    assert await shown(client, person, funding_id) == "DECLINED"
    assert await money(client, person) == ("100.00", "100.00", "0.00")
    assert await told(app, funding_id) == [("funding.declined", "card_declined")]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_pin_changed_within_a_day_sends_a_held_movement_to_review(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    ready: Callable[..., Awaitable[Any]],
    kind: str,
) -> None:
    """The PIN changed (with the current one) just before: the right new PIN does not release a
    stepped-up movement but moves it to review, still held (a cash-out reserved, an add-funds
    neither booked nor charged; none is exported while held, migration 0011), in the
    operators' queue with why."""
    person, path, source = await ready(kind)
    analyst = await make_person()
    await grant_admin(app.state.pool, analyst.username)
    await set_pin(client, person, pin="9753", current_pin=PIN)
    key = uuid.uuid4().hex
    held = await start(client, person, path, "30.00", source, STEP_UP, key)
    funding_id = held.json()["transfer_id"]
    answered = await verify(client, person, funding_id, "9753")
    assert answered.status_code == 200 and answered.json()["status"] == "PENDING_REVIEW"
    assert await shown(client, person, funding_id) == "PENDING_REVIEW"
    reserved = ("100.00", "70.00", "0.00") if kind == "cash_out" else ("100.00", "100.00", "0.00")
    assert await money(client, person) == reserved
    assert await charges(app, person, key) == 0
    queue = (await client.get("/api/v1/admin/reviews", headers=analyst.auth)).json()
    queued = next(r for r in queue if r["review_id"] == funding_id)
    assert "PIN changed within 24 hours answered the step-up" in queued["reasons"]


@pytest.mark.parametrize("kind", KINDS)
async def test_an_operator_approves_one_held_for_review_and_rejects_another(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    ready: Callable[..., Awaitable[Any]],
    kind: str,
) -> None:
    """A farm's phone: 202 PENDING_REVIEW; the queue lists it with its type, score, reasons
    and the user's activity; a PIN can't release it; approved, it goes to its rail; rejected,
    another gives the money back (or never takes it); each decision audited once."""
    person, path, source = await ready(kind)
    analyst = await make_person()
    await grant_admin(app.state.pool, analyst.username)
    first = await start(client, person, path, "10.00", source, REVIEW)
    assert first.status_code == 202 and first.json()["status"] == "PENDING_REVIEW"
    second = await start(client, person, path, "5.00", source, REVIEW)
    ids = [first.json()["transfer_id"], second.json()["transfer_id"]]
    queue = (await client.get("/api/v1/admin/reviews", headers=analyst.auth)).json()
    mine = [r for r in queue if r["review_id"] in ids]
    assert [(r["review_id"], r["type"], r["sender_id"]) for r in mine] == [
        (ids[0], "cash_out" if kind == "cash_out" else "add_funds", person.user_id),
        (ids[1], "cash_out" if kind == "cash_out" else "add_funds", person.user_id),
    ]
    assert mine[0]["reasons"] == [
        "a device never seen for this user",
        "a device 4 accounts act from",
    ]
    assert mine[0]["recent_activity"][0]["action"] == "review"
    assert (await verify(client, person, ids[0], PIN)).status_code == 409
    decided = [
        await decide(client, analyst, review_id, verb)
        for review_id, verb in zip(ids, ("approve", "reject"), strict=True)
    ]
    expected_status = {"cash_out": "PENDING", "ach_add_funds": "PENDING"}.get(kind, "COMPLETED")
    assert [d.json()["status"] for d in decided] == [expected_status, "DECLINED"]
    assert [await shown(client, person, i) for i in ids] == [expected_status, "DECLINED"]
    assert (
        await money(client, person)
        == {
            "cash_out": ("100.00", "90.00", "0.00"),
            "ach_add_funds": ("100.00", "100.00", "10.00"),
            "card_add_funds": ("110.00", "110.00", "0.00"),
        }[kind]
    )
    trail = await app.state.pool.fetch(
        "SELECT action FROM operator_actions WHERE subject = ANY($1::text[]) ORDER BY id",
        [f"transfer:{i}" for i in ids],
    )
    assert [t["action"] for t in trail] == ["approve_review", "reject_review"]


@pytest.mark.parametrize("kind", KINDS)
async def test_approve_and_reject_at_once_give_exactly_one_outcome(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    ready: Callable[..., Awaitable[Any]],
    kind: str,
) -> None:
    """Approve and reject sent together: one wins, the other gets 409, the money is where the
    winner said, and one decision is audited."""
    person, path, source = await ready(kind)
    analyst = await make_person()
    await grant_admin(app.state.pool, analyst.username)
    key = uuid.uuid4().hex
    review_id = (await start(client, person, path, "30.00", source, REVIEW, key)).json()[
        "transfer_id"
    ]
    decisions = await asyncio.gather(
        *(decide(client, analyst, review_id, verb) for verb in ("approve", "reject"))
    )
    assert sorted(d.status_code for d in decisions) == [200, 409]
    winner = next(d.json()["status"] for d in decisions if d.status_code == 200)
    approved = {
        "cash_out": ("100.00", "70.00", "0.00"),
        "ach_add_funds": ("100.00", "100.00", "30.00"),
        "card_add_funds": ("130.00", "130.00", "0.00"),
    }
    expected = approved[kind] if winner != "DECLINED" else ("100.00", "100.00", "0.00")
    assert await money(client, person) == expected
    assert await charges(app, person, key) == (1 if winner == "COMPLETED" else 0)
    trail = await app.state.pool.fetchval(
        "SELECT count(*) FROM operator_actions WHERE subject = $1", f"transfer:{review_id}"
    )
    assert trail == 1


async def test_a_released_card_add_funds_whose_process_died_is_charged_by_recovery_once(
    app: FastAPI, client: httpx.AsyncClient, ready: Callable[..., Awaitable[Any]]
) -> None:
    """Released (the decision committed) but the process died before charging: reconcile finds
    nothing wrong, and the recovery sweep charges the card once and credits the wallet."""
    person, path, source = await ready("card_add_funds")
    key = uuid.uuid4().hex
    funding_id = (await start(client, person, path, "12.00", source, STEP_UP, key)).json()[
        "transfer_id"
    ]
    await app.state.pool.execute(
        """UPDATE funding_transfers SET risk_status = NULL,
                  risk_decided_at = now() - interval '5 minutes'
            WHERE id = $1""",
        uuid.UUID(funding_id),
    )
    assert await check_funding(app.state.pool) == []
    assert await book_unbooked(app.state.funding, processor=app.state.cards) >= 1
    assert await book_unbooked(app.state.funding, processor=app.state.cards) == 0
    assert await charges(app, person, key) == 1
    assert await shown(client, person, funding_id) == "COMPLETED"
    assert await money(client, person) == ("112.00", "112.00", "0.00")
