"""Money in and out over HTTP: bank accounts, ACH add-funds and cash-out, returns, claw-back,
cards, the bank partner's webhooks, limits. The ledger reconciles after every scenario."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from billfold.funding import webhooks
from billfold.funding.ach import is_banking_day
from billfold.funding.reconcile import check_funding
from billfold.ledger.reconcile import reconcile
from tests.api.driver import (
    Person,
    add_funds,
    cash_out,
    history,
    sandbox_ach,
    send,
    store_card,
    wallet,
)

MakePerson = Callable[..., Awaitable[Any]]
LinkBank = Callable[..., Awaitable[str]]
ROUTING = "011000015"  # a valid ABA checksum
ACCOUNT = "000123456789"


@pytest.fixture(autouse=True)
async def ledger_reconciles(app: FastAPI) -> AsyncIterator[None]:
    """After every test: the ledger reconciles, and every movement's status matches it."""
    yield
    report = await reconcile(app.state.pool)
    assert report.ok, report.render()
    assert await check_funding(app.state.pool) == []


async def test_linking_stores_only_last4_and_checks_every_field(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A link answers last4 only; bad routing, account, name and type are refused by field,
    without echoing the account number."""
    person = await make_person()
    good = {
        "routing_number": ROUTING,
        "account_number": "987654321",
        "account_holder_name": "Ada",
        "account_type": "savings",
    }
    made = await client.post("/api/v1/bank-accounts", json=good, headers=person.auth)
    assert made.status_code == 201
    assert made.json()["last4"] == "4321" and made.json()["status"] == "pending_verification"
    assert "987654321" not in made.text
    again = await client.post("/api/v1/bank-accounts", json=good, headers=person.auth)
    assert again.status_code == 409 and again.json()["code"] == "bank_account_already_linked"
    for field, value in [
        ("routing_number", "011000016"),
        ("account_number", "12a4567"),
        ("account_number", 55512345678),
        ("account_holder_name", "  "),
        ("account_type", "brokerage"),
    ]:
        bad = await client.post(
            "/api/v1/bank-accounts", json={**good, field: value}, headers=person.auth
        )
        assert bad.status_code == 422, (field, bad.text)
        assert bad.json()["field"] == field
        assert "12a4567" not in bad.text and "55512345678" not in bad.text
    listed = await client.get("/api/v1/bank-accounts", headers=person.auth)
    assert [a["last4"] for a in listed.json()] == ["4321"]


async def test_three_wrong_micro_deposit_answers_lock_the_account(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Two wrong answers say how many tries are left; the third locks the account for good."""
    person = await make_person()
    made = await client.post(
        "/api/v1/bank-accounts",
        json={
            "routing_number": ROUTING,
            "account_number": "11112222",
            "account_holder_name": "Ada",
            "account_type": "checking",
        },
        headers=person.auth,
    )
    bank_id = made.json()["bank_account_id"]
    url = f"/api/v1/bank-accounts/{bank_id}/verify"
    first = await client.post(url, json={"amounts": ["1.00", "2.00"]}, headers=person.auth)
    assert first.status_code == 422 and first.json()["attempts_left"] == 2
    await client.post(url, json={"amounts": ["1.00", "2.00"]}, headers=person.auth)
    third = await client.post(url, json={"amounts": ["1.00", "2.00"]}, headers=person.auth)
    assert third.status_code == 409 and third.json()["code"] == "bank_account_locked"
    funds = await add_funds(client, person, "10.00", bank_account_id=bank_id)
    assert funds.status_code == 422 and funds.json()["code"] == "bank_account_not_verified"


async def test_ach_add_funds_is_pending_until_settled_and_settles_once(
    client: httpx.AsyncClient, make_person: MakePerson, link_bank: LinkBank
) -> None:
    """202 PENDING with a banking-day estimate; pending_balance until settled; a second settle
    and a replayed request change nothing."""
    person = await make_person()
    bank_id = await link_bank(person, ACCOUNT)
    key = uuid.uuid4().hex
    body = {"user_id": person.user_id, "amount": "125.50", "bank_account_id": bank_id}
    headers = {**person.auth, "Idempotency-Key": key}
    started = await client.post("/api/v1/wallet/add-funds", json=body, headers=headers)
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "PENDING"
    assert is_banking_day(date.fromisoformat(started.json()["estimated_completion"]))
    assert (await wallet(client, person))["pending_balance"] == "125.50"
    assert (await wallet(client, person))["available_balance"] == "0.00"
    replay = await client.post("/api/v1/wallet/add-funds", json=body, headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["transfer_id"] == started.json()["transfer_id"]
    other = await client.post(
        "/api/v1/wallet/add-funds", json={**body, "amount": "1.00"}, headers=headers
    )
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    transfer_id = started.json()["transfer_id"]
    assert (await sandbox_ach(client, person, transfer_id, "settle"))["status"] == "applied"
    assert (await sandbox_ach(client, person, transfer_id, "settle"))["status"] == "ignored"
    after = await wallet(client, person)
    assert (after["balance"], after["pending_balance"]) == ("125.50", "0.00")
    shown = await client.get(f"/api/v1/funding/{transfer_id}", headers=person.auth)
    assert shown.json()["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("code", "unlinked", "flagged"),
    [("R01", False, False), ("R03", True, False), ("R10", True, True)],
)
async def test_a_pending_return_voids_and_takes_the_codes_action(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: LinkBank,
    code: str,
    unlinked: bool,
    flagged: bool,
) -> None:
    """Returned before settlement: the pending money disappears; account problems unlink the
    bank account; unauthorised debits also flag the user; a later settle is refused."""
    person = await make_person()
    bank_id = await link_bank(person, ACCOUNT)
    transfer_id = (await add_funds(client, person, "40.00", bank_account_id=bank_id)).json()[
        "transfer_id"
    ]
    returned = await sandbox_ach(client, person, transfer_id, "return", return_code=code)
    assert returned["status"] == "applied"
    assert (await sandbox_ach(client, person, transfer_id, "settle"))["status"] == "ignored"
    money = await wallet(client, person)
    assert (money["balance"], money["pending_balance"]) == ("0.00", "0.00")
    banks = (await client.get("/api/v1/bank-accounts", headers=person.auth)).json()
    assert (banks == []) is unlinked
    flags = await app.state.pool.fetchval(
        "SELECT count(*) FROM risk_flags WHERE user_id = $1 AND reason = 'unauthorised_return'",
        uuid.UUID(person.user_id),
    )
    assert (flags > 0) is flagged


async def history_rows(client: httpx.AsyncClient, person: Person) -> list[dict[str, Any]]:
    response = await history(client, person)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["transactions"]
    return rows


async def test_a_card_add_funds_shows_its_fee_and_goes_by_one_id_everywhere(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Issue 25: a completed card add-funds says what the card paid, the fee and what the
    wallet got (all of it available now), and goes by its uuid in its answer, its history row
    and both lookups; its ledger step's own id, which history used to show, is no public id."""
    person = await make_person()
    funded = await add_funds(
        client, person, "20.00", card_id=await store_card(client, person, "4242424242424242")
    )
    assert funded.status_code == 201, funded.text
    body = funded.json()
    assert (body["amount"], body["fee"], body["total"]) == ("20.00", "0.60", "20.60")
    assert body["available_now"] == "20.00"
    assert (await wallet(client, person))["available_balance"] == "20.00"
    movement_id = body["transfer_id"]
    for url in (f"/api/v1/funding/{movement_id}", f"/api/v1/transfers/{movement_id}"):
        shown = await client.get(url, headers=person.auth)
        assert (shown.status_code, shown.json()) == (200, body), url
    rows = await history_rows(client, person)
    assert [(r["id"], r["type"], r["amount"], r["fee"], r["total"]) for r in rows] == [
        (movement_id, "add_funds", "20.00", "0.60", "20.60")
    ]
    step = await app.state.pool.fetchval(
        "SELECT posted_id FROM funding_transfers WHERE id = $1", uuid.UUID(movement_id)
    )
    hidden = await client.get(f"/api/v1/transfers/{step}", headers=person.auth)
    assert (hidden.status_code, hidden.json()["code"]) == (404, "transfer_not_found")


async def test_a_declined_card_retried_with_its_key_is_a_replay(
    client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Issue 25: the processor keeps a declined charge under its key; the retry's 402 says it
    is that answer again (Idempotent-Replayed), as a replayed success does."""
    person = await make_person()
    card_id = await store_card(client, person, "4000000000000002")
    request = {
        "json": {"user_id": person.user_id, "amount": "5.00", "card_id": card_id},
        "headers": {**person.auth, "Idempotency-Key": uuid.uuid4().hex},
    }
    first = await client.post("/api/v1/wallet/add-funds", **request)
    assert (first.status_code, first.json()["code"]) == (402, "card_declined")
    assert "Idempotent-Replayed" not in first.headers
    again = await client.post("/api/v1/wallet/add-funds", **request)
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (402, "true")
    assert again.json() == first.json()


async def test_ach_movements_go_by_one_id_and_a_refused_cash_out_speaks_dollars(
    client: httpx.AsyncClient, make_person: MakePerson, link_bank: LinkBank
) -> None:
    """Issue 25: an ACH add-funds and a cash-out go by their uuids in history, pending and
    settled (the ledger's hold, then its post, each had an id of its own), and look up at
    /transfers/{id}; a cash-out refused for funds names the available balance in dollars,
    and its retry is a replay."""
    person = await make_person("10.00")
    bank_id = await link_bank(person, ACCOUNT)
    added = (await add_funds(client, person, "25.00", bank_account_id=bank_id)).json()
    out = (await cash_out(client, person, "4.00", bank_id)).json()
    assert (added["total"], added["available_now"], out["total"]) == ("25.00", "0.00", "4.00")
    ids = [added["transfer_id"], out["transfer_id"]]
    rows = await history_rows(client, person)
    assert [(r["id"], r["status"]) for r in rows[:2]] == [(ids[1], "PENDING"), (ids[0], "PENDING")]
    for movement_id in ids:
        await sandbox_ach(client, person, movement_id, "settle")
    rows = await history_rows(client, person)
    assert {(r["id"], r["status"]) for r in rows[:2]} == {(i, "COMPLETED") for i in ids}
    for movement_id in ids:
        shown = await client.get(f"/api/v1/transfers/{movement_id}", headers=person.auth)
        assert shown.json()["status"] == "COMPLETED", shown.text
    settled = await client.get(f"/api/v1/funding/{ids[0]}", headers=person.auth)
    assert settled.json()["available_now"] == "25.00"
    request = {
        "json": {"user_id": person.user_id, "amount": "31.01", "bank_account_id": bank_id},
        "headers": {**person.auth, "Idempotency-Key": uuid.uuid4().hex},
    }
    refused = await client.post("/api/v1/wallet/cash-out", **request)
    assert refused.status_code == 422 and "Idempotent-Replayed" not in refused.headers
    assert refused.json()["detail"] == (
        "your available balance is 31.00 USD; the transfer needs 31.01 USD"
    )
    again = await client.post("/api/v1/wallet/cash-out", **request)
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (422, "true")
    assert again.json() == refused.json()


async def test_card_funding_charges_a_fee_declines_cleanly_and_claws_back_a_chargeback(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A card add-funds completes at once with its fee to revenue; a declined card changes
    nothing; a chargeback claws back what was charged."""
    person = await make_person()

    async def card(number: str) -> str:
        token = await client.post(
            "/api/v1/sandbox/cards/tokenize",
            json={"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
            headers=person.auth,
        )
        assert token.status_code == 201 and number not in token.text
        stored = await client.post(
            "/api/v1/cards", json={"token": token.json()["token"]}, headers=person.auth
        )
        assert stored.status_code == 201
        return str(stored.json()["card_id"])

    good = await card("4242424242424242")
    funded = await add_funds(client, person, "50.00", card_id=good)
    assert funded.status_code == 201 and funded.json()["status"] == "COMPLETED"
    assert funded.json()["fee"] == "1.50"
    assert (await wallet(client, person))["balance"] == "50.00"
    declined = await add_funds(client, person, "50.00", card_id=await card("4000000000000002"))
    assert declined.status_code == 402 and declined.json()["code"] == "card_declined"
    assert (await wallet(client, person))["balance"] == "50.00"
    bad = await client.post(
        "/api/v1/sandbox/cards/tokenize",
        json={"number": "4242424242424241", "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        headers=person.auth,
    )
    assert bad.status_code == 422 and "4242424242424241" not in bad.text
    charged_back = await client.post(
        f"/api/v1/sandbox/cards/{funded.json()['transfer_id']}/chargeback", headers=person.auth
    )
    assert charged_back.json()["status"] == "applied"
    assert (await wallet(client, person))["balance"] == "0.00"


async def test_webhooks_refuse_forgeries_and_stale_ones_and_apply_an_authentic_one(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: LinkBank,
) -> None:
    """A wrong signature or an old timestamp is a 401; an authentic delivery is applied; an
    event without its movement is a 422."""
    person = await make_person()
    bank_id = await link_bank(person, ACCOUNT)
    transfer_id = (await add_funds(client, person, "20.00", bank_account_id=bank_id)).json()[
        "transfer_id"
    ]
    secret = webhooks.webhook_secret(app.state.settings)
    event = {"type": "ach.settled", "data": {"transfer_id": transfer_id}}
    headers, body = webhooks.sign(secret, event)
    forged = {**headers, "webhook-signature": "v1,AAAA" + headers["webhook-signature"][7:]}
    response = await client.post("/api/v1/webhooks/bank", content=body, headers=forged)
    assert response.status_code == 401 and response.json()["code"] == "invalid_webhook_signature"
    stale = {**headers, "webhook-timestamp": str(int(time.time()) - 600)}
    response = await client.post("/api/v1/webhooks/bank", content=body, headers=stale)
    assert response.status_code == 401
    assert response.json()["code"] == "webhook_timestamp_out_of_range"
    tampered = body.replace(b"settled", b"returned")
    response = await client.post("/api/v1/webhooks/bank", content=tampered, headers=headers)
    assert response.status_code == 401
    assert (await wallet(client, person))["balance"] == "0.00"
    first = await client.post("/api/v1/webhooks/bank", content=body, headers=headers)
    assert first.json()["status"] == "applied"  # tests/funding/test_webhooks.py: once only
    junk = webhooks.sign(secret, {"type": "ach.settled", "data": {}})
    response = await client.post("/api/v1/webhooks/bank", content=junk[1], headers=junk[0])
    assert response.status_code == 422


async def test_funding_limits_name_the_limit(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: LinkBank,
) -> None:
    """Over the tier's daily add-funds limit: 422 limit_exceeded naming it; nothing recorded."""
    person = await make_person()
    bank_id = await link_bank(person, ACCOUNT)
    assert (await add_funds(client, person, "2000.00", bank_account_id=bank_id)).status_code == 202
    over = await add_funds(client, person, "500.01", bank_account_id=bank_id)
    assert over.status_code == 422 and over.json()["code"] == "limit_exceeded"
    assert over.json()["limit"] == "add_funds_daily"
    assert (await wallet(client, person))["pending_balance"] == "2000.00"


async def test_no_full_account_or_card_number_is_stored_cached_or_logged(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: LinkBank,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After the bank and card tests, no table, no Redis key and no log line holds a full bank
    account number or a card number."""
    person = await make_person()
    await link_bank(person, "99887766554433")
    logged = capsys.readouterr()
    assert "99887766554433" not in logged.out + logged.err
    pool = app.state.pool
    tables = await pool.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    for needle in ("99887766554433", ACCOUNT, "4242424242424242", "4000000000000002"):
        for table in tables:
            found = await pool.fetchval(
                f'SELECT count(*) FROM "{table["table_name"]}" t WHERE t::text LIKE $1',
                f"%{needle}%",
            )
            assert found == 0, (needle, table["table_name"])
    redis = app.state.redis
    async for key in redis.scan_iter(count=1000):
        value = orjson.dumps(str(await redis.dump(key)))
        assert b"99887766554433" not in value and b"4242424242424242" not in value


async def test_an_established_user_spends_part_of_a_deposit_at_once_and_owes_it_if_returned(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: LinkBank,
) -> None:
    """With an instant limit, an established user's deposit is partly available before it
    settles; returned after that part was spent, the part is owed and outgoing money stops."""
    funding = app.state.funding
    default = funding.settings
    funding.settings = default.model_copy(
        update={"ach_instant_limit_minor": 30_00, "established_after_days": 0}
    )
    try:
        person, friend = await make_person(), await make_person()
        bank_id = await link_bank(person, ACCOUNT)
        first = (await add_funds(client, person, "10.00", bank_account_id=bank_id)).json()
        assert first["available_now"] == "0.00"  # not established yet: nothing settled
        await sandbox_ach(client, person, first["transfer_id"], "settle")
        second = (await add_funds(client, person, "100.00", bank_account_id=bank_id)).json()
        assert second["available_now"] == "30.00"
        money = await wallet(client, person)
        assert (money["available_balance"], money["pending_balance"]) == ("40.00", "70.00")
        sent = await send(client, person, friend, "40.00")
        assert sent.status_code == 201
        await sandbox_ach(client, person, second["transfer_id"], "return", return_code="R01")
        money = await wallet(client, person)
        assert (money["balance"], money["pending_balance"]) == ("0.00", "0.00")
        blocked = await cash_out(client, person, "1.00", bank_id)
        assert blocked.status_code == 403 and blocked.json()["amount_owed"] == "30.00"
    finally:
        funding.settings = default


async def test_a_large_add_funds_whose_scoring_overruns_is_refused_and_records_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: LinkBank,
    stalled_scoring: Any,
) -> None:
    """Money in is scored like P2P: from $1,000.00 (config.risk_fail_closed_minor) an overrun
    refuses it with 503 risk_unavailable and records no movement; a smaller one goes on, its
    assessment recorded as let through (risk_timeout)."""
    person = await make_person()
    bank_id = await link_bank(person, ACCOUNT)
    with stalled_scoring():
        refused = await add_funds(client, person, "1000.00", bank_account_id=bank_id)
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "risk_unavailable"
        assert (await wallet(client, person))["pending_balance"] == "0.00"
        let_through = await add_funds(client, person, "999.99", bank_account_id=bank_id)
        assert let_through.status_code == 202, let_through.text
    assert (await wallet(client, person))["pending_balance"] == "999.99"
    await app.state.risk.log.flush()
    recorded = await app.state.pool.fetch(
        """SELECT amount_minor, action, reasons FROM risk_assessments
            WHERE user_id = $1 AND kind = 'add_funds'""",
        uuid.UUID(person.user_id),
    )
    assert [tuple(row) for row in recorded] == [(99_999, "allow", ["risk_timeout"])]
