"""Issue 28's proof, end to end over HTTP, as one merchant's day: a person onboards a business,
keys it (a revoked key refused at once), shows its static code, is paid by that code, by a
checkout session's dynamic code and by one session raced by 50 payers (paid once); a session
expires and another is canceled, each refused afterwards; refunds in part, in full, refused
past the payment, at once; the fees booked; a manual and a daily payout, in the NACHA file,
settled by the sandbox bank; the day's settlement report against the ledger; the owner's
webhook endpoint given every kind; both sides' histories naming each other. After every step
the money is exactly as expected, the ledger reconciles and every funding movement matches it.

The module has a database of its own: the ACH export, the daily run and the settlement report
read the whole database, and are asserted exactly."""

from __future__ import annotations

import asyncio
import csv
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billfold.config import Settings
from billfold.events import outbox
from billfold.funding import ach
from billfold.funding.reconcile import check_funding
from billfold.ledger.accounts import get_account
from billfold.ledger.reconcile import reconcile
from billfold.merchants import qr
from billfold.merchants.fees import merchant_fee_minor
from billfold.webhooks import fanout
from tests.api.conftest import MakePerson
from tests.api.driver import Person, problem, wallet
from tests.merchants.scan import read_png, scan
from tests.merchants.shop import Shop, fee_revenue, merchant_balance, pay, told, wallet_minor
from tests.world import billfold

BUSINESS = {"name": "Lovelace Coffee", "mcc": "5814", "city": "Oakland", "country": "US"}
BANK_NUMBER = "000987654321"
HOOKED = [
    "payment.completed",
    "checkout.session.paid",
    "refund.completed",
    "payout.requested",
    "payout.paid",
    "payout.returned",
    "payout.declined",
]


@pytest.fixture(scope="module")
def settings(isolated_settings: Settings) -> Settings:
    return isolated_settings


def fee(amount_minor: int) -> int:
    """The fee at the default settings: 1.9% half up, and 10 cents."""
    return merchant_fee_minor(amount_minor, 190, 10)


def minor(text: str) -> int:
    """Cents of a decimal string the API or the report writes ("-12.50")."""
    sign = -1 if text.startswith("-") else 1
    whole, _, cents = text.lstrip("-").partition(".")
    return sign * (int(whole) * 100 + int(cents or 0))


@dataclass
class Books:
    """What the journey expects of the money, in cents: the merchant account, fee revenue
    since the start, and each person's wallet."""

    app: FastAPI
    fees_at_start: int
    merchant: int = 0
    fees: int = 0
    wallets: dict[str, int] = field(default_factory=dict)

    async def check(self, shop: Shop, people: list[Person]) -> None:
        """The money is exactly as expected, the ledger reconciles, every funding movement
        matches it."""
        assert await merchant_balance(self.app, shop) == self.merchant
        assert await fee_revenue(self.app) - self.fees_at_start == self.fees
        for person in people:
            assert await wallet_minor(self.app, person) == self.wallets[person.user_id], person
        report = await reconcile(self.app.state.pool)
        assert report.ok, report.render()
        assert await check_funding(self.app.state.pool) == []

    def paid(self, payer: Person, amount_minor: int) -> None:
        self.wallets[payer.user_id] -= amount_minor
        self.merchant += amount_minor - fee(amount_minor)
        self.fees += fee(amount_minor)

    def refunded(self, payer: Person, amount_minor: int) -> None:
        self.wallets[payer.user_id] += amount_minor
        self.merchant -= amount_minor


async def test_a_merchants_day_over_http(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    link_bank: Any,
    tmp_path: Path,
) -> None:
    pool = app.state.pool
    books = Books(app, await fee_revenue(app))
    today = datetime.now(UTC).date()

    # --- onboarding: a person signs up and opens a business -------------------------------------
    owner = await make_person()
    made = await client.post("/api/v1/merchants", json=BUSINESS, headers=owner.auth)
    assert made.status_code == 201, made.text
    merchant = made.json()
    merchant_id = merchant["merchant_id"]
    assert {k: merchant[k] for k in BUSINESS} == BUSINESS
    assert (merchant["status"], merchant["payout_schedule"]) == ("active", "manual")
    mine = await client.get("/api/v1/merchants", headers=owner.auth)
    assert [m["merchant_id"] for m in mine.json()] == [merchant_id]
    # Before anything happens, the owner's app registers for what it is to be told.
    hook = await client.post(
        "/api/v1/webhook-endpoints",
        json={"url": "https://hooks.example.com/lovelace", "event_types": HOOKED},
        headers=owner.auth,
    )
    assert hook.status_code == 201, hook.text
    endpoint_id = hook.json()["endpoint_id"]

    # --- keys: two made, one revoked (refused at once), the other still works -------------------
    keys_path = f"/api/v1/merchants/{merchant_id}/api-keys"
    old, new = [(await client.post(keys_path, headers=owner.auth)).json() for _ in range(2)]
    assert old["secret"].startswith("sk_") and new["secret"] != old["secret"]
    old_auth = {"Authorization": f"Bearer {old['secret']}"}
    assert (await client.get("/api/v1/merchant", headers=old_auth)).status_code == 200
    revoked = await client.delete(f"{keys_path}/{old['key_id']}", headers=owner.auth)
    assert revoked.status_code == 204, revoked.text
    assert problem(await client.get("/api/v1/merchant", headers=old_auth)) == (
        401,
        "unauthenticated",
    )
    refused_session = await client.post(
        "/api/v1/checkout/sessions",
        json={"amount": "1.00"},
        headers={**old_auth, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert problem(refused_session) == (401, "unauthenticated")
    shop = Shop(merchant_id, owner, new["secret"], BUSINESS)
    me = await client.get("/api/v1/merchant", headers=shop.auth)
    assert me.status_code == 200 and me.json()["merchant_id"] == merchant_id, me.text
    listed = {k["key_id"]: k for k in (await client.get(keys_path, headers=owner.auth)).json()}
    assert listed[old["key_id"]]["revoked_at"] is not None
    assert listed[new["key_id"]]["revoked_at"] is None
    assert all("secret" not in k for k in listed.values())
    assert await pool.fetchval("SELECT count(*) FROM checkout_sessions") == 0
    await books.check(shop, [])

    # --- the static code, as JSON and drawn ----------------------------------------------------
    qr_path = f"/api/v1/merchants/{merchant_id}/qr"
    as_json = await client.get(qr_path, headers=shop.auth)
    assert as_json.status_code == 200, as_json.text
    static = as_json.json()["payload"]
    assert static == shop.static_qr()
    decoded = qr.decode(static)
    assert (decoded.merchant_id, decoded.name, decoded.amount_minor) == (
        uuid.UUID(merchant_id),
        BUSINESS["name"],
        None,
    )
    drawn = await client.get(qr_path, params={"format": "png"}, headers=owner.auth)
    assert drawn.headers["content-type"] == "image/png"
    assert scan(read_png(drawn.content)) == (static, "M")

    # --- a customer pays the static code, typing the amount ------------------------------------
    cathy, dan = await make_person("200.00"), await make_person("100.00")
    racers = [await make_person("10.00") for _ in range(50)]
    late = await make_person("20.00")
    payers = [cathy, dan, late, *racers]
    books.wallets = {p.user_id: 200_00 if p is cathy else 100_00 for p in (cathy, dan)}
    books.wallets |= {late.user_id: 20_00} | {r.user_id: 10_00 for r in racers}
    paid_static = await pay(client, cathy, qr_payload=static, amount="120.00", note="beans")
    assert paid_static.status_code == 201, paid_static.text
    static_payment = paid_static.json()
    assert (static_payment["status"], static_payment["amount"]) == ("COMPLETED", "120.00")
    assert static_payment["merchant_name"] == BUSINESS["name"]
    assert "fee" not in static_payment  # the payer is never shown the merchant's fee
    books.paid(cathy, 120_00)
    await books.check(shop, payers)

    # --- the merchant's server opens a session; a customer pays its dynamic code ---------------
    opened = await client.post(
        "/api/v1/checkout/sessions",
        json={"amount": "40.00", "reference": "order-1001"},
        headers={**shop.auth, "Idempotency-Key": "order-1001"},
    )
    assert opened.status_code == 201, opened.text
    checkout = opened.json()
    assert (checkout["status"], checkout["amount"], checkout["reference"]) == (
        "open",
        "40.00",
        "order-1001",
    )
    dynamic = qr.decode(checkout["qr_payload"])
    assert (dynamic.session_id, dynamic.amount_minor) == (checkout["session_id"], 40_00)
    paid_dynamic = await pay(client, dan, qr_payload=checkout["qr_payload"])
    assert paid_dynamic.status_code == 201, paid_dynamic.text
    dynamic_payment = paid_dynamic.json()
    assert (dynamic_payment["session_id"], dynamic_payment["amount"]) == (
        checkout["session_id"],
        "40.00",
    )
    session_path = f"/api/v1/checkout/sessions/{checkout['session_id']}"
    shown = (await client.get(session_path, headers=shop.auth)).json()
    assert (shown["status"], shown["payment_id"]) == ("paid", dynamic_payment["payment_id"])
    as_merchant = await client.get(
        f"/api/v1/payments/{dynamic_payment['payment_id']}", headers=shop.auth
    )
    assert (as_merchant.json()["fee"], as_merchant.json()["net_amount"]) == ("0.86", "39.14")
    books.paid(dan, 40_00)
    await books.check(shop, payers)

    # --- a session raced by 50 payers: paid once -----------------------------------------------
    raced = await client.post(
        "/api/v1/checkout/sessions",
        json={"amount": "7.00"},
        headers={**shop.auth, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert raced.status_code == 201, raced.text
    race = raced.json()
    answers = await asyncio.gather(
        *(pay(client, racer, qr_payload=race["qr_payload"]) for racer in racers)
    )
    assert sorted(a.status_code for a in answers) == [201] + [409] * 49, [
        a.text for a in answers if a.status_code not in (201, 409)
    ]
    assert {problem(a) for a in answers if a.status_code == 409} == {(409, "session_not_open")}
    [winner] = [r for r, a in zip(racers, answers, strict=True) if a.status_code == 201]
    [race_payment] = [a.json() for a in answers if a.status_code == 201]
    assert (race_payment["amount"], race_payment["session_id"]) == ("7.00", race["session_id"])
    books.paid(winner, 7_00)
    await books.check(shop, payers)
    race_told = [k for k, _ in await told(app, session_id=race["session_id"])]
    assert race_told.count("payment.completed") == race_told.count("checkout.session.paid") == 1

    # --- a session expires, another is canceled: each refused when paid afterwards -------------
    expiring, canceled = [
        (
            await client.post(
                "/api/v1/checkout/sessions",
                json={"amount": amount, "expires_in_s": 60},
                headers={**shop.auth, "Idempotency-Key": uuid.uuid4().hex},
            )
        ).json()
        for amount in ("5.00", "6.00")
    ]
    await pool.execute(
        "UPDATE checkout_sessions SET expires_at = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(expiring["session_id"]),
    )
    read = await client.get(
        f"/api/v1/checkout/sessions/{expiring['session_id']}", headers=shop.auth
    )
    assert read.json()["status"] == "expired", read.text
    too_late = await pay(client, late, qr_payload=expiring["qr_payload"])
    assert problem(too_late) == (409, "session_not_open")
    assert too_late.json()["session_status"] == "expired"
    cancel = await client.post(
        f"/api/v1/checkout/sessions/{canceled['session_id']}/cancel", headers=shop.auth
    )
    assert cancel.status_code == 200 and cancel.json()["status"] == "canceled", cancel.text
    after_cancel = await pay(client, late, session_id=canceled["session_id"])
    assert problem(after_cancel) == (409, "session_not_open")
    assert after_cancel.json()["session_status"] == "canceled"
    for closed, kind in ((expiring, "expired"), (canceled, "canceled")):
        kinds = [k for k, _ in await told(app, session_id=closed["session_id"])]
        assert kinds == ["checkout.session.created", f"checkout.session.{kind}"]
    await books.check(shop, payers)

    # --- refunds: part, an over-refund refused, the rest, nothing more -------------------------
    def refund(payment: dict[str, Any], amount: str | None = None) -> Any:
        return client.post(
            f"/api/v1/payments/{payment['payment_id']}/refunds",
            json={"amount": amount} if amount else {},
            headers={**shop.auth, "Idempotency-Key": uuid.uuid4().hex},
        )

    part = await refund(dynamic_payment, "15.00")
    assert part.status_code == 201 and part.json()["amount"] == "15.00", part.text
    books.refunded(dan, 15_00)
    await books.check(shop, payers)
    over = await refund(dynamic_payment, "25.01")
    assert problem(over) == (422, "refund_exceeds_payment")
    await books.check(shop, payers)
    rest = await refund(dynamic_payment)
    assert rest.status_code == 201 and rest.json()["amount"] == "25.00", rest.text
    books.refunded(dan, 25_00)
    await books.check(shop, payers)
    assert problem(await refund(dynamic_payment, "0.01")) == (409, "payment_not_refundable")

    # --- refunds at once: never past the payment -----------------------------------------------
    at_once = await asyncio.gather(*(refund(static_payment, "25.00") for _ in range(10)))
    assert sorted(a.status_code for a in at_once) == [201] * 4 + [422] * 6
    assert {problem(a) for a in at_once if a.status_code == 422} == {
        (422, "refund_exceeds_payment")
    }
    books.refunded(cathy, 100_00)
    await books.check(shop, payers)
    listed_refunds = await client.get(
        f"/api/v1/payments/{static_payment['payment_id']}/refunds", headers=shop.auth
    )
    assert [r["amount"] for r in listed_refunds.json()] == ["25.00"] * 4

    # --- the fees: exactly the sum of the payments' fees, none refunded ------------------------
    assert books.fees == fee(120_00) + fee(40_00) + fee(7_00) == 2_38 + 86 + 23
    assert books.merchant == 167_00 - 3_47 - 140_00 == 23_53
    sold = await client.get(f"/api/v1/merchants/{merchant_id}/payments", headers=shop.auth)
    assert [(p["amount"], p["fee"], p["refunded"]) for p in sold.json()["payments"]] == [
        ("7.00", "0.23", "0.00"),
        ("40.00", "0.86", "40.00"),
        ("120.00", "2.38", "100.00"),
    ]
    settled_before_payouts = books.merchant

    # --- payouts: daily to a verified bank account, and one asked by hand -----------------------
    bank = await link_bank(owner, BANK_NUMBER)
    daily = await client.patch(
        f"/api/v1/merchants/{merchant_id}",
        json={"payout_schedule": "daily", "payout_bank_account_id": bank},
        headers=owner.auth,
    )
    assert daily.status_code == 200, daily.text
    assert (daily.json()["payout_schedule"], daily.json()["payout_bank_account_id"]) == (
        "daily",
        bank,
    )
    asked = await client.post(
        f"/api/v1/merchants/{merchant_id}/payouts",
        json={"amount": "15.00", "bank_account_id": bank},
        headers={**owner.auth, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert asked.status_code == 202, asked.text
    manual = asked.json()
    assert (manual["status"], manual["amount"]) == ("PENDING", "15.00")
    await books.check(shop, payers)  # held, not yet posted
    account_id = await pool.fetchval(
        "SELECT account_id FROM merchants WHERE id = $1", uuid.UUID(merchant_id)
    )
    assert (await get_account(pool, account_id)).available_minor == 23_53 - 15_00
    # The day's run, as an operator (or the service's scheduler) runs it: the rest goes out.
    run = await asyncio.to_thread(
        billfold, app.state.settings, "merchants", "payouts", "run", "--date", today.isoformat()
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1].startswith(f"{today}: 1 paid,"), run.stdout
    payouts = (
        await client.get(f"/api/v1/merchants/{merchant_id}/payouts", headers=owner.auth)
    ).json()["payouts"]
    assert [(p["amount"], p["status"]) for p in payouts] == [
        ("8.53", "PENDING"),
        ("15.00", "PENDING"),
    ]
    await books.check(shop, payers)

    # The NACHA file carries both as CCD credits to the owner's account.
    nacha = tmp_path / "out.ach"
    exported = await asyncio.to_thread(
        billfold, app.state.settings, "ach", "export", "--out", str(nacha)
    )
    assert exported.returncode == 0, exported.stderr
    sent = ach.parse(nacha.read_text())
    credits = {
        entry.individual_id.strip(): (batch.sec_code, entry.transaction_code, entry.amount_minor)
        for batch in sent.batches
        for entry in batch.entries
        if batch.sec_code == "CCD"
    }
    assert credits == {
        uuid.UUID(p["payout_id"]).hex[:15].upper(): ("CCD", 22, minor(p["amount"])) for p in payouts
    }
    # The sandbox bank settles them: the merchant account is paid out.
    for payout in payouts:
        settled = await client.post(
            f"/api/v1/sandbox/ach/{payout['payout_id']}/settle", headers=owner.auth
        )
        assert settled.status_code == 200 and settled.json()["status"] == "applied", settled.text
    payouts = (
        await client.get(f"/api/v1/merchants/{merchant_id}/payouts", headers=owner.auth)
    ).json()["payouts"]
    assert [p["status"] for p in payouts] == ["COMPLETED", "COMPLETED"]
    books.merchant -= 23_53
    await books.check(shop, payers)

    # --- the day's settlement report against the ledger ----------------------------------------
    report_file = tmp_path / "settlement.csv"
    written = await asyncio.to_thread(
        billfold,
        app.state.settings,
        "merchants",
        "settlement",
        "--date",
        today.isoformat(),
        "--out",
        str(report_file),
    )
    assert written.returncode == 0, written.stderr
    with report_file.open() as file:
        lines = list(csv.DictReader(file))
    assert {line["merchant_id"] for line in lines} == {merchant_id}
    assert [line["type"] for line in lines].count("payment") == 3
    assert [line["type"] for line in lines].count("refund") == 6
    [total] = [line for line in lines if line["type"] == "total"]
    assert total["id"] == "payments: 3; refunds: 6"
    assert (minor(total["gross"]), minor(total["fee"]), minor(total["net"])) == (
        167_00 - 140_00,
        books.fees,
        settled_before_payouts,
    )
    ledger = await pool.fetch(
        """SELECT t.code, sum(e.amount_minor) AS moved
             FROM entries e JOIN transfers t ON t.id = e.transfer_id
             JOIN merchants m ON m.account_id = e.account_id
            WHERE m.id = $1 GROUP BY t.code""",
        uuid.UUID(merchant_id),
    )
    moved = {row["code"]: int(row["moved"]) for row in ledger}
    assert moved["merchant_payment"] == sum(
        minor(line["net"]) for line in lines if line["type"] == "payment"
    )
    assert moved["refund"] == sum(minor(line["net"]) for line in lines if line["type"] == "refund")
    assert moved["merchant_payment"] + moved["refund"] == minor(total["net"])

    # --- the owner's webhook endpoint was given every kind it asked for ------------------------
    rows = await pool.fetch(
        """SELECT * FROM outbox WHERE data ->> 'owner_id' = $1 OR data ->> 'user_id' = $1
            ORDER BY id""",
        owner.user_id,
    )
    await fanout.fan_out(pool, [outbox.cloudevent(row) for row in rows])
    delivered: list[str] = []
    cursor = None
    while True:
        page = await client.get(
            f"/api/v1/webhook-endpoints/{endpoint_id}/deliveries",
            params={"limit": 100, **({"cursor": cursor} if cursor else {})},
            headers=owner.auth,
        )
        assert page.status_code == 200, page.text
        delivered += [d["event_type"] for d in page.json()["deliveries"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert {kind: delivered.count(kind) for kind in set(delivered)} == {
        "payment.completed": 3,
        "checkout.session.paid": 2,
        "refund.completed": 6,
        "payout.requested": 2,
        "payout.paid": 2,
    }

    # --- both sides' histories name each other --------------------------------------------------
    theirs = await client.get(f"/api/v1/wallet/{cathy.user_id}/transactions", headers=cathy.auth)
    rows_of_cathy = {
        (r["type"], r["direction"], r["amount"], r["counterparty"])
        for r in theirs.json()["transactions"]
        if r["type"] != "add_funds"
    }
    assert rows_of_cathy == {
        ("merchant_payment", "out", "120.00", BUSINESS["name"]),
        ("refund", "in", "25.00", BUSINESS["name"]),
    }
    assert (await wallet(client, cathy))["balance"] == "180.00"
    history = await client.get(
        f"/api/v1/merchants/{merchant_id}/transactions", params={"limit": 200}, headers=shop.auth
    )
    assert history.status_code == 200, history.text
    assert history.json()["balance"] == "0.00"
    named = [(r["type"], r["direction"], r["counterparty"]) for r in history.json()["transactions"]]
    assert named.count(("merchant_payment", "in", cathy.username)) == 1
    assert named.count(("merchant_payment", "in", dan.username)) == 1
    assert named.count(("merchant_payment", "in", winner.username)) == 1
    assert named.count(("refund", "out", cathy.username)) == 4
    assert named.count(("refund", "out", dan.username)) == 2
    paid_out = await client.get(
        f"/api/v1/merchants/{merchant_id}/transactions",
        params={"type": "payout"},
        headers=owner.auth,
    )
    assert paid_out.status_code == 200, paid_out.text
    assert sorted((r["id"], r["amount"], r["status"]) for r in paid_out.json()["transactions"]) == (
        sorted((p["payout_id"], p["amount"], "COMPLETED") for p in payouts)
    )
    await books.check(shop, payers)
