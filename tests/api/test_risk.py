"""The risk engine on P2P transfers, with the rules as shipped: step-up with a PIN, review by an
operator, decline and freeze, the assessment stored with every transfer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billfold.risk.rules import RiskRules
from billfold.wallet.users import grant_admin
from tests.api.driver import AT_HOME, balances, send, set_pin, verify

MakePerson = Callable[..., Awaitable[Any]]


@pytest.fixture(scope="module")
async def app(running: Any) -> AsyncIterator[FastAPI]:
    """The shipped rule thresholds (the other API tests relax them), a generous time budget.
    The model scores but does not decide here: these users are minutes old, which it finds
    suspicious (test_risk_verdicts_with_model.py lets it decide, for users with a past)."""
    async with running(risk_rules=RiskRules(model_decides=False)) as app:
        yield app


async def test_a_new_device_steps_up_and_the_right_pin_completes_it(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """From a new phone: held (PENDING_VERIFICATION), the money reserved; without a PIN set,
    a clear error; two wrong PINs say how many tries are left; the right one moves the money."""
    alice, bob = await make_person("100.00"), await make_person()
    assert (await send(client, alice, bob, "10.00", **AT_HOME)).json()["status"] == "COMPLETED"
    held = await send(client, alice, bob, "20.00", phone="new-phone", country="US")
    assert held.status_code == 201 and held.json()["status"] == "PENDING_VERIFICATION"
    transfer_id = held.json()["transfer_id"]
    assert await balances(client, alice) == ("90.00", "70.00")
    unset = await verify(client, alice, transfer_id, "1234")
    assert unset.status_code == 422 and unset.json()["code"] == "pin_not_set"
    await set_pin(client, alice, pin="4321", password=alice.password)
    wrong = await verify(client, alice, transfer_id, "0000")
    assert wrong.status_code == 403 and wrong.json()["attempts_left"] == 2
    right = await verify(client, alice, transfer_id, "4321")
    assert right.status_code == 200 and right.json()["status"] == "COMPLETED"
    assert await balances(client, alice) == ("70.00", "70.00")
    assert await balances(client, bob) == ("30.00", "30.00")
    again = await verify(client, alice, transfer_id, "4321")
    assert again.status_code == 409
    shown = await client.get(f"/api/v1/transfers/{transfer_id}", headers=bob.auth)
    assert shown.json()["status"] == "COMPLETED"
    # The phone is known now: its next transfer goes straight through.
    assert (await send(client, alice, bob, "1.00", phone="new-phone", country="US")).json()[
        "status"
    ] == ("COMPLETED")


async def test_an_account_takeover_is_declined_and_frozen_while_the_owner_pays_as_usual(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """The owner's ordinary transfers pass; a new device in a new country draining to a new
    payee is declined and the account frozen (audited as the engine's action); nothing moved."""
    owner, friend, thief = await make_person("500.00"), await make_person(), await make_person()
    for amount in ("12.00", "8.50", "20.00"):
        assert (await send(client, owner, friend, amount, **AT_HOME)).json()[
            "status"
        ] == "COMPLETED"
    drained = await send(
        client, owner, thief, "450.00", owner.device("unknown-android"), country="RO"
    )
    assert drained.status_code == 403 and drained.json()["code"] == "declined_by_risk"
    assert "reasons" not in drained.json()  # for operators, not for whoever holds the phone
    await app.state.risk.log.flush()  # assessments are written in batches, a moment later
    reasons = await app.state.pool.fetchval(
        "SELECT reasons FROM risk_assessments WHERE ref = $1",
        drained.request.headers["idempotency-key"],
    )
    assert set(reasons) >= {
        "a device never seen for this user",
        "country RO never seen for this user",
    }
    assert await balances(client, owner) == ("459.50", "459.50")
    # A retry of the declined request is refused again, not told it is still running.
    retried = await client.post(
        "/api/v1/transfers",
        content=drained.request.content,
        headers=dict(drained.request.headers),
    )
    assert retried.status_code == 403, retried.json()
    frozen = await send(client, owner, friend, "1.00", **AT_HOME)
    assert frozen.status_code == 403 and frozen.json()["code"] == "wallet_frozen"
    audit = await app.state.pool.fetchrow(
        "SELECT operator_id, action FROM operator_actions WHERE subject = $1",
        f"user:{owner.user_id}",
    )
    assert (audit["operator_id"], audit["action"]) == (None, "freeze")


async def test_every_scored_transfer_keeps_its_score_verdict_and_reasons(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Six transfers in a minute: five allowed, the sixth held for review for its velocity;
    each one's assessment is stored."""
    fran, gus = await make_person("100.00"), await make_person()
    statuses = [
        (await send(client, fran, gus, "1.00", **AT_HOME)).json()["status"] for _ in range(6)
    ]
    assert statuses == ["COMPLETED"] * 5 + ["PENDING_REVIEW"]
    await app.state.risk.log.flush()
    rows = await app.state.pool.fetch(
        "SELECT action, reasons FROM risk_assessments WHERE user_id = $1 ORDER BY created_at",
        uuid.UUID(fran.user_id),
    )
    assert [r["action"] for r in rows] == ["allow"] * 5 + ["review"]
    assert rows[-1]["reasons"] == ["6 movements in a minute (more than 5)"]


async def test_retries_are_answered_without_being_scored_again(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A transfer retried with its key, at once and after its claim is gone, replays the first
    answer. A retry while the claim stands is not scored again. A late one is (nothing tells
    it from a new request before the ledger answers), but its assessment is not stored: the
    ledger writes an allowed transfer's assessment with its outcome, so once per key."""
    hal, ivy = await make_person("100.00"), await make_person()
    key = uuid.uuid4().hex
    body = {"sender_id": hal.user_id, "recipient": ivy.username, "amount": "3.00"}
    headers = {**hal.auth, "Idempotency-Key": key, "X-Device-Id": hal.device()}
    first = await client.post("/api/v1/transfers", json=body, headers=headers)
    again = await client.post("/api/v1/transfers", json=body, headers=headers)
    await app.state.redis.delete(f"in-flight:user:{hal.user_id}:{key}")
    late = await client.post("/api/v1/transfers", json=body, headers=headers)
    assert first.status_code == again.status_code == late.status_code == 201
    assert again.headers["Idempotent-Replayed"] == late.headers["Idempotent-Replayed"] == "true"
    assert first.json() == again.json() == late.json()
    await app.state.risk.log.flush()
    scored = await app.state.pool.fetch(
        "SELECT created_at FROM risk_assessments WHERE ref = $1", key
    )
    assert len(scored) == 1
    assert scored[0]["created_at"] <= datetime.fromisoformat(first.json()["created_at"])


async def test_a_suspicious_transfer_of_2000_or_more_is_a_sar_candidate(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Paying a flagged user $2,500: held for review, and listed for operators as a SAR
    candidate; a non-operator can't see the list."""
    hank, mule, analyst = await make_person("3000.00"), await make_person(), await make_person()
    await grant_admin(app.state.pool, analyst.username)
    await app.state.pool.execute(
        "UPDATE users SET flagged = true WHERE id = $1", uuid.UUID(mule.user_id)
    )
    held = await send(client, hank, mule, "2500.00", **AT_HOME)
    assert held.json()["status"] == "PENDING_REVIEW"
    listed = (await client.get("/api/v1/admin/aml", headers=analyst.auth)).json()
    mine = [c for c in listed if c["user_id"] == hank.user_id]
    assert [(c["reports"], c["amount_minor"], c["verdict"]) for c in mine] == [
        (["sar"], 250000, "review")
    ]
    hidden = await client.get("/api/v1/admin/aml", headers=hank.auth)
    assert hidden.status_code == 404


async def test_money_in_then_straight_out_is_stopped_and_cash_over_10000_a_day_is_reported(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: Callable[..., Awaitable[str]],
) -> None:
    """A card top-up and then a cash-out of nearly all of it at once is held for the user's PIN
    (a weak signal: people also cash out a top-up's balance), its money reserved but not
    sent; a day's add-funds past $10,000 is a CTR candidate."""
    funding = app.state.funding
    default = funding.settings
    funding.settings = default.model_copy(
        update={"funding_limits": {"basic": default.funding_limits["established"]}}
    )
    try:
        ivy = await make_person()
        bank_id = await link_bank(ivy, "31415926")
        token = await client.post(
            "/api/v1/sandbox/cards/tokenize",
            json={"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"},
            headers=ivy.auth,
        )
        card = await client.post(
            "/api/v1/cards", json={"token": token.json()["token"]}, headers=ivy.auth
        )

        async def move(path: str, amount: str, **source: str) -> httpx.Response:
            return await client.post(
                f"/api/v1/wallet/{path}",
                json={"user_id": ivy.user_id, "amount": amount, **source},
                headers={**ivy.auth, "Idempotency-Key": uuid.uuid4().hex},
            )

        topped = await move("add-funds", "6000.00", card_id=card.json()["card_id"])
        assert topped.status_code == 201
        out = await move("cash-out", "5900.00", bank_account_id=bank_id)
        assert out.status_code == 202 and out.json()["status"] == "PENDING_VERIFICATION"
        assert await balances(client, ivy) == ("6000.00", "100.00")
        more = await move("add-funds", "3500.00", bank_account_id=bank_id)
        assert more.status_code == 202
        await app.state.risk.log.flush()
        reports = await app.state.pool.fetch(
            "SELECT kind, action, aml FROM risk_assessments WHERE user_id = $1 ORDER BY id",
            uuid.UUID(ivy.user_id),
        )
        assert [(r["kind"], r["action"], list(r["aml"])) for r in reports] == [
            ("add_funds", "allow", []),
            ("cash_out", "step_up", ["ctr", "sar"]),
            ("add_funds", "allow", ["ctr"]),
        ]
    finally:
        funding.settings = default


async def test_a_late_retry_declined_this_time_still_answers_the_first_transfer(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A transfer went through; its retry, after the in-flight mark expired, comes from a new
    device in a new country and is scored again, and declined. The client still gets the first
    answer (the money moved), not a 403; nothing moves twice. (The engine's freeze for the two
    strong signals stands: whoever replays the request from there is suspect.)"""
    lee, max_ = await make_person("500.00"), await make_person()
    key = uuid.uuid4().hex
    body = {"sender_id": lee.user_id, "recipient": max_.username, "amount": "450.00"}

    def post(name: str, country: str) -> Awaitable[httpx.Response]:
        headers = {
            "Idempotency-Key": key,
            "X-Device-Id": lee.device(name),
            "X-Client-Country": country,
        }
        return client.post("/api/v1/transfers", json=body, headers={**lee.auth, **headers})

    first = await post("home-phone", "US")
    assert first.status_code == 201 and first.json()["status"] == "COMPLETED"
    await app.state.redis.delete(f"in-flight:user:{lee.user_id}:{key}")
    retried = await post("unknown-android", "RO")
    assert retried.status_code == 201, retried.json()
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json() == first.json()
    await app.state.risk.log.flush()
    actions = await app.state.pool.fetch(
        "SELECT action FROM risk_assessments WHERE ref = $1 ORDER BY id", key
    )
    assert [a["action"] for a in actions] == ["allow", "decline"]
    assert await balances(client, lee) == ("50.00", "50.00")


async def test_a_late_retry_of_a_held_transfer_answers_the_hold(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """The same request again after its in-flight mark expired, now scored differently (the
    device is known by then): the first answer, the hold, stands; nothing moves twice."""
    jo, kim = await make_person("40.00"), await make_person()
    await send(client, jo, kim, "1.00", **AT_HOME)
    key = uuid.uuid4().hex
    body = {"sender_id": jo.user_id, "recipient": kim.username, "amount": "5.00"}
    first = await client.post(
        "/api/v1/transfers",
        json=body,
        headers={**jo.auth, "Idempotency-Key": key, "X-Device-Id": jo.device("tablet")},
    )
    assert first.json()["status"] == "PENDING_VERIFICATION"
    await send(
        client, jo, kim, "1.00", jo.device("tablet"), country="US"
    )  # held too: the tablet is still new
    await app.state.pool.execute(
        "INSERT INTO user_devices (user_id, device_id) VALUES ($1, $2)",
        uuid.UUID(jo.user_id),
        jo.device_id("tablet"),
    )
    await app.state.redis.delete(f"in-flight:user:{jo.user_id}:{key}")
    retried = await client.post(
        "/api/v1/transfers",
        json=body,
        headers={**jo.auth, "Idempotency-Key": key, "X-Device-Id": jo.device("tablet")},
    )
    assert retried.status_code == 201 and retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json()["transfer_id"] == first.json()["transfer_id"]
    assert retried.json()["status"] == "PENDING_VERIFICATION"
    other = await client.post(
        "/api/v1/transfers",
        json={**body, "amount": "6.00"},
        headers={**jo.auth, "Idempotency-Key": key, "X-Device-Id": jo.device("tablet")},
    )
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"


async def test_a_late_retry_held_again_answers_the_first_hold_as_it_stands_now(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A held transfer's request again after its in-flight mark expired, still from the new
    device, so held again: the answer is the first hold as it stands now, waiting and then
    completed, marked replayed; the money is reserved and moved once, and the assessments of
    the later verdicts, which held nothing, are no part of the past the features read."""
    jo, kim = await make_person("40.00"), await make_person()
    await send(client, jo, kim, "1.00", **AT_HOME)
    key = uuid.uuid4().hex
    claim = f"in-flight:user:{jo.user_id}:{key}"
    body = {"sender_id": jo.user_id, "recipient": kim.username, "amount": "5.00"}
    headers = {**jo.auth, "Idempotency-Key": key, "X-Device-Id": jo.device("tablet")}
    first = await client.post("/api/v1/transfers", json=body, headers=headers)
    assert first.json()["status"] == "PENDING_VERIFICATION"
    await app.state.redis.delete(claim)
    again = await client.post("/api/v1/transfers", json=body, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert await balances(client, jo) == ("39.00", "34.00")
    await set_pin(client, jo, pin="2468", password=jo.password)
    verified = await verify(client, jo, first.json()["transfer_id"], "2468")
    assert verified.json()["status"] == "COMPLETED"
    await app.state.pool.execute(
        "DELETE FROM user_devices WHERE user_id = $1 AND device_id = $2",
        uuid.UUID(jo.user_id),
        jo.device_id("tablet"),
    )  # the tablet new again: held again
    await app.state.redis.delete(claim)
    late = await client.post("/api/v1/transfers", json=body, headers=headers)
    assert late.status_code == 201 and late.headers["Idempotent-Replayed"] == "true"
    assert late.json()["transfer_id"] == first.json()["transfer_id"]
    assert late.json()["status"] == "COMPLETED"
    assert await balances(client, jo) == ("34.00", "34.00")
    rows = await app.state.pool.fetch(
        "SELECT action, declined_later FROM risk_assessments WHERE ref = $1 ORDER BY id", key
    )
    assert [tuple(r) for r in rows] == [
        ("step_up", False),
        ("step_up", True),
        ("step_up", True),
    ]


async def test_scoring_time_is_a_prometheus_histogram(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Every assessment is timed in billfold_risk_assessment_seconds, by kind of movement."""

    def scored(text: str) -> float:
        prefix = 'billfold_risk_assessment_seconds_count{kind="p2p"} '
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return float(lines[0][len(prefix) :]) if lines else 0.0

    before = scored((await client.get("/metrics")).text)
    ida, ivo = await make_person("10.00"), await make_person()
    assert (await send(client, ida, ivo, "1.00", **AT_HOME)).status_code == 201
    assert scored((await client.get("/metrics")).text) == before + 1


async def test_a_transfer_waits_for_a_scoring_slot_then_goes_through(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """With every slot taken (config.risk_concurrency), a transfer waits, unscored and
    unmoved, and goes through once one frees."""
    alice, bob = await make_person("20.00"), await make_person()
    slots = app.state.risk_slots
    held = 0
    while not slots.locked():
        await slots.acquire()
        held += 1
    assert held == app.state.settings.risk_concurrency
    try:
        waiting = asyncio.create_task(send(client, alice, bob, "5.00", **AT_HOME))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        assert await balances(client, alice) == ("20.00", "20.00")
    finally:
        for _ in range(held):
            slots.release()
    response = await waiting
    assert response.status_code == 201, response.text
    assert await balances(client, alice) == ("15.00", "15.00")


async def test_a_verdict_made_within_the_budget_stands_however_long_it_takes_to_store(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Stepped up within a 200-ms budget, then its assessment's write waits 0.6 s for a lock:
    the transfer is held as decided, not let through as `risk_timeout` beside a held
    assessment, and it has the one assessment."""
    mia, noa = await make_person("50.00"), await make_person()
    assert (await send(client, mia, noa, "1.00", **AT_HOME)).status_code == 201
    settings = app.state.settings
    app.state.settings = settings.model_copy(update={"risk_budget_ms": 200.0})
    locked = asyncio.Event()

    async def hold_the_table() -> None:
        async with app.state.pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE risk_assessments IN SHARE MODE")
            locked.set()
            await asyncio.sleep(0.6)

    try:
        blocker = asyncio.create_task(hold_the_table())
        await locked.wait()
        key = uuid.uuid4().hex
        held = await client.post(
            "/api/v1/transfers",
            json={"sender_id": mia.user_id, "recipient": noa.username, "amount": "20.00"},
            headers={**mia.auth, "Idempotency-Key": key, "X-Device-Id": mia.device("new-phone")},
        )
        await blocker
    finally:
        app.state.settings = settings
    assert held.status_code == 201, held.text
    assert held.json()["status"] == "PENDING_VERIFICATION"
    assert await balances(client, mia) == ("49.00", "29.00")
    await app.state.risk.log.flush()
    rows = await app.state.pool.fetch(
        "SELECT action, reasons FROM risk_assessments WHERE ref = $1", key
    )
    assert [r["action"] for r in rows] == ["step_up"]
    assert "risk_timeout" not in rows[0]["reasons"]


async def test_a_large_transfer_whose_scoring_overruns_is_refused_and_can_be_retried(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson, stalled_scoring: Any
) -> None:
    """At or above config.risk_fail_closed_minor ($1,000.00 by default), an overrun does not let
    the transfer through unscored: 503 risk_unavailable, nothing moved, and a retry with the
    same key runs once scoring answers again."""
    alice, bob = await make_person("1500.00"), await make_person()
    key = uuid.uuid4().hex
    request = {
        "json": {"sender_id": alice.user_id, "recipient": bob.username, "amount": "1000.00"},
        "headers": {**alice.auth, "Idempotency-Key": key, "X-Device-Id": alice.device()},
    }
    assert app.state.fail_closed_minor == app.state.settings.risk_fail_closed_minor == 100_000
    with stalled_scoring():
        refused = await client.post("/api/v1/transfers", **request)
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "risk_unavailable"
        assert refused.headers["retry-after"] == "1"
        assert await balances(client, alice) == ("1500.00", "1500.00")
        assert await balances(client, bob) == ("0.00", "0.00")
    retried = await client.post("/api/v1/transfers", **request)
    assert retried.status_code == 201, retried.text
    assert retried.json()["status"] == "COMPLETED"
    assert await balances(client, alice) == ("500.00", "500.00")


async def test_an_allowed_transfers_assessment_is_stored_in_its_transaction(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """The ledger writes an allowed transfer's assessment with the transfer, in its batch's
    statement: it is there as soon as the answer is, with nothing left to flush."""
    jo, kim = await make_person("100.00"), await make_person()
    key = uuid.uuid4().hex
    response = await client.post(
        "/api/v1/transfers",
        json={"sender_id": jo.user_id, "recipient": kim.username, "amount": "4.25"},
        headers={**jo.auth, "Idempotency-Key": key, "X-Device-Id": jo.device()},
    )
    assert response.status_code == 201
    row = await app.state.pool.fetchrow(
        """SELECT user_id, counterparty_id, kind, amount_minor, action, score, device_id,
                  reasons, new_payee
             FROM risk_assessments WHERE ref = $1""",
        key,
    )
    assert row is not None
    assert (str(row["user_id"]), str(row["counterparty_id"])) == (jo.user_id, kim.user_id)
    assert (row["kind"], row["amount_minor"], row["action"]) == ("p2p", 425, "allow")
    assert (row["device_id"], row["new_payee"]) == (jo.home_device_id, True)
    assert 0.0 <= row["score"] <= 1.0
    assert isinstance(row["reasons"], list)


async def test_a_transfer_let_through_unscored_is_recorded_with_its_reason(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson, stalled_scoring: Any
) -> None:
    """Scoring overran its budget on a small transfer: it moves (fails open), and its
    assessment is stored with it all the same, `allow` with reason risk_timeout, for operators
    to see and for the next movement's past (the recipient is no longer a new payee)."""
    jo, kim = await make_person("100.00"), await make_person()
    keys = [uuid.uuid4().hex, uuid.uuid4().hex]

    def send_once(key: str) -> Awaitable[httpx.Response]:
        return send(client, jo, kim, "3.00", jo.device(), key=key)

    with stalled_scoring():
        let_through = await send_once(keys[0])
    assert let_through.status_code == 201, let_through.text
    assert (await send_once(keys[1])).status_code == 201
    rows = {
        row["ref"]: row
        for row in await app.state.pool.fetch(
            """SELECT ref, action, score, reasons, counterparty_id::text AS counterparty,
                      amount_minor, new_payee, model_version, top_features
                 FROM risk_assessments WHERE ref = ANY($1)""",
            keys,
        )
    }
    unscored, scored = rows[keys[0]], rows[keys[1]]
    assert (unscored["action"], unscored["score"], unscored["reasons"]) == (
        "allow",
        0.0,
        ["risk_timeout"],
    )
    assert (unscored["counterparty"], unscored["amount_minor"]) == (kim.user_id, 300)
    assert unscored["new_payee"] is None
    assert (unscored["model_version"], unscored["top_features"]) == (None, None)
    assert scored["new_payee"] is False
    assert await balances(client, jo) == ("94.00", "94.00")


async def test_every_path_stores_the_model_version_and_a_held_or_declined_ones_top_features(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Allowed (written by the ledger), stepped up (at once) and declined (batched): each
    assessment names the model version that scored it; the held and the declined one also
    keep the five features that pushed the score most, the allowed one none."""
    ana, ben, thief = await make_person("500.00"), await make_person(), await make_person()
    allowed = await send(client, ana, ben, "5.00", **AT_HOME)
    stepped = await send(client, ana, ben, "6.00", phone="new-phone", country="US")
    declined = await send(client, ana, thief, "400.00", phone="unknown-android", country="RO")
    assert (allowed.status_code, stepped.status_code, declined.status_code) == (201, 201, 403)
    await app.state.risk.log.flush()
    rows = await app.state.pool.fetch(
        """SELECT action, model_version, top_features FROM risk_assessments
            WHERE user_id = $1 ORDER BY created_at""",
        uuid.UUID(ana.user_id),
    )
    version = app.state.risk.scorer.version
    assert [(r["action"], r["model_version"]) for r in rows] == [
        ("allow", version),
        ("step_up", version),
        ("decline", version),
    ]
    assert rows[0]["top_features"] is None
    for row in rows[1:]:
        top = row["top_features"]
        assert len(top) == 5 and {tuple(sorted(f)) for f in top} == {
            ("contribution", "name", "value")
        }
        sizes = [abs(f["contribution"]) for f in top]
        assert sizes == sorted(sizes, reverse=True)
