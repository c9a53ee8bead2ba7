"""Refunds over HTTP: full and partial, never more than the payment (concurrent refunds
included), from the merchant account (refused when it lacks the money, nothing changed), the fee
kept; the payer's and the merchant's histories naming each other; the merchant's list of
payments; the day's settlement report. The ledger reconciles after each test."""

from __future__ import annotations

import asyncio
import csv
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billfold.ledger.accounts import posted_balance
from billfold.ledger.reconcile import reconcile
from billfold.merchants import refunds, sales
from billfold.merchants.profiles import get_merchant
from tests.api.conftest import MakePerson
from tests.merchants.shop import Shop, open_shop
from tests.merchants.shop import pay as pay_request
from tests.world import billfold


@pytest.fixture(autouse=True)
async def reconciled(app: FastAPI) -> AsyncIterator[None]:
    yield
    report = await reconcile(app.state.pool)
    assert report.ok, report.render()


def refund(
    client: httpx.AsyncClient,
    shop: Shop,
    payment_id: str,
    amount: str | None = None,
    key: str | None = None,
    **extra: Any,
) -> Any:
    body: dict[str, Any] = {**({"amount": amount} if amount else {}), **extra}
    headers = {**shop.auth, "Idempotency-Key": key or str(uuid.uuid4())}
    return client.post(f"/api/v1/payments/{payment_id}/refunds", json=body, headers=headers)


async def pay(
    app: FastAPI,
    client: httpx.AsyncClient,
    payer: Any,
    shop: Shop,
    amount: str,
    note: str | None = None,
) -> str:
    """A completed payment of `payer`'s to the shop by its static code; its id."""
    extra = {"note": note} if note else {}
    paid = await pay_request(client, payer, qr_payload=shop.static_qr(), amount=amount, **extra)
    assert paid.status_code == 201, paid.text
    return str(paid.json()["payment_id"])


async def balance(app: FastAPI, shop: Shop) -> int:
    merchant = await get_merchant(app.state.pool, shop.merchant_id)
    return await posted_balance(app.state.pool, merchant.account_id)


async def test_partial_refunds_then_the_rest_never_more(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    owner, payer = await make_person(), await make_person("50.00")
    shop = await open_shop(client, owner)
    paid = await pay(app, client, payer, shop, "20.00")
    await pay(app, client, payer, shop, "10.00")  # money in the account beyond the payment
    before = await balance(app, shop)

    first = await refund(client, shop, paid, "5.00", reason="one cup was cold")
    assert first.status_code == 201, first.text
    assert first.json() | {"refund_id": "", "created_at": ""} == {
        "refund_id": "",
        "payment_id": paid,
        "amount": "5.00",
        "currency": "USD",
        "status": "COMPLETED",
        "reason": "one cup was cold",
        "created_at": "",
    }
    second = await refund(client, shop, paid, "7.50")
    assert second.status_code == 201, second.text
    too_much = await refund(client, shop, paid, "7.51")
    assert too_much.status_code == 422
    assert too_much.json()["code"] == "refund_exceeds_payment"
    assert too_much.json()["field"] == "amount" or "amount" in too_much.json()["detail"]
    rest = await refund(client, shop, paid)  # no amount: all that is left
    assert rest.status_code == 201, rest.text
    assert rest.json()["amount"] == "7.50"
    again = await refund(client, shop, paid, "0.01")
    assert again.status_code == 409
    assert again.json()["code"] == "payment_not_refundable"

    assert await balance(app, shop) == before - 20_00
    listed = await client.get(f"/api/v1/payments/{paid}/refunds", headers=shop.auth)
    assert [r["amount"] for r in listed.json()] == ["5.00", "7.50", "7.50"]
    told = await told_refunds(app, paid)
    assert sorted(e["amount"] for e in told) == ["5.00", "7.50", "7.50"]
    assert {(e["owner_id"], e["payer_id"]) for e in told} == {(owner.user_id, payer.user_id)}


async def test_the_fee_is_not_refunded_and_a_refund_needs_the_money(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A payment's fee stays in fee revenue: refunding the payment in full costs the merchant
    more than the payment brought, and without that money the refund is refused, changing
    nothing; the same key answers the same refusal, a new key after money came in succeeds."""
    owner, payer = await make_person(), await make_person("30.00")
    shop = await open_shop(client, owner)
    paid = await pay(app, client, payer, shop, "10.00")
    net = await balance(app, shop)
    assert net < 10_00  # the fee was taken

    key = str(uuid.uuid4())
    refused = await refund(client, shop, paid, key=key)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "insufficient_funds"
    # In the merchant's terms: never the ledger's account id or raw minor units.
    available = f"{net // 100}.{net % 100:02d}"
    assert refused.json()["detail"] == (
        f"the merchant account's available balance is {available} USD; the refund needs 10.00 USD"
    )
    assert {k: refused.json()[k] for k in ("available", "needed", "currency")} == {
        "available": available,
        "needed": "10.00",
        "currency": "USD",
    }
    assert "account_id" not in refused.json() and "available_minor" not in refused.json()
    assert await balance(app, shop) == net
    row = await app.state.pool.fetchrow(
        "SELECT refunded_minor FROM merchant_payments WHERE id = $1", uuid.UUID(paid)
    )
    assert row["refunded_minor"] == 0
    replayed = await refund(client, shop, paid, key=key)
    assert replayed.status_code == 422
    assert replayed.json() == refused.json()
    assert replayed.headers["Idempotent-Replayed"] == "true"

    await pay(app, client, payer, shop, "5.00")
    done = await refund(client, shop, paid)
    assert done.status_code == 201, done.text
    assert done.json()["amount"] == "10.00"
    statuses = await app.state.pool.fetch(
        "SELECT status FROM merchant_refunds WHERE payment_id = $1 ORDER BY created_at",
        uuid.UUID(paid),
    )
    assert [r["status"] for r in statuses] == ["FAILED", "COMPLETED"]
    assert [e["amount"] for e in await told_refunds(app, paid)] == ["10.00"]  # not the refused


async def told_refunds(app: FastAPI, payment_id: str) -> list[dict[str, Any]]:
    """The `refund.completed` events of a payment in the outbox."""
    rows = await app.state.pool.fetch(
        """SELECT data FROM outbox WHERE type = 'billfold.refund.completed.v1'
              AND data ->> 'payment_id' = $1""",
        payment_id,
    )
    return [json.loads(r["data"]) if isinstance(r["data"], str) else r["data"] for r in rows]


async def test_concurrent_refunds_never_sum_past_the_payment(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    owner, payer = await make_person(), await make_person("100.00")
    shop = await open_shop(client, owner)
    paid = await pay(app, client, payer, shop, "10.00")
    await pay(app, client, payer, shop, "50.00")
    before = await balance(app, shop)

    answers = await asyncio.gather(*(refund(client, shop, paid, "1.50") for _ in range(20)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) == 6  # 6 x 1.50 = 9.00; a seventh would be 10.50
    assert {a.json()["code"] for a in answers if a.status_code != 201} == {"refund_exceeds_payment"}
    assert await balance(app, shop) == before - 9_00
    refunded = await app.state.pool.fetchval(
        "SELECT refunded_minor FROM merchant_payments WHERE id = $1", uuid.UUID(paid)
    )
    assert refunded == 9_00


async def test_a_retry_answers_the_same_refund(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    owner, payer = await make_person(), await make_person("40.00")
    shop = await open_shop(client, owner)
    paid = await pay(app, client, payer, shop, "20.00")
    key = str(uuid.uuid4())
    answers = await asyncio.gather(*(refund(client, shop, paid, "2.00", key=key) for _ in range(5)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["refund_id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 4
    other = await refund(client, shop, paid, "3.00", key=key)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    count = await app.state.pool.fetchval(
        "SELECT count(*) FROM merchant_refunds WHERE payment_id = $1", uuid.UUID(paid)
    )
    assert count == 1


async def test_only_the_merchant_refunds_its_payments(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    owner, other_owner, payer = await make_person(), await make_person(), await make_person("9.00")
    shop, other = await open_shop(client, owner), await open_shop(client, other_owner)
    paid = await pay(app, client, payer, shop, "3.00")
    foreign = await refund(client, other, paid, "1.00")
    assert foreign.status_code == 404
    as_person = await client.post(
        f"/api/v1/payments/{paid}/refunds",
        json={"amount": "1.00"},
        headers={**payer.auth, "Idempotency-Key": "k1"},
    )
    assert as_person.status_code == 401
    as_owner = await client.post(
        f"/api/v1/payments/{paid}/refunds",
        json={"amount": "1.00"},
        headers={**owner.auth, "Idempotency-Key": "k2"},
    )
    assert as_owner.status_code == 401
    no_key = await client.post(
        f"/api/v1/payments/{paid}/refunds", json={"amount": "1.00"}, headers=shop.auth
    )
    assert no_key.status_code == 422
    assert no_key.json()["field"] == "idempotency_key"
    for bad, field in (({"amount": "-1"}, "amount"), ({"reason": "x" * 281}, "reason")):
        answer = await client.post(
            f"/api/v1/payments/{paid}/refunds",
            json=bad,
            headers={**shop.auth, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert answer.status_code == 422, answer.text
        assert field in answer.text
    assert (
        await app.state.pool.fetchval(
            "SELECT count(*) FROM merchant_refunds WHERE payment_id = $1", uuid.UUID(paid)
        )
        == 0
    )


async def test_histories_name_the_merchant_and_the_payer(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    owner, payer = await make_person(), await make_person("25.00")
    shop = await open_shop(client, owner, name="Blue Bottle")
    paid = await pay(app, client, payer, shop, "12.00", note="flat white")
    await pay(app, client, payer, shop, "8.00")
    made = await refund(client, shop, paid, "2.00")
    assert made.status_code == 201, made.text

    mine = await client.get(f"/api/v1/wallet/{payer.user_id}/transactions", headers=payer.auth)
    rows = mine.json()["transactions"]
    by_type = {(r["type"], r["amount"]): r for r in rows}
    payment = by_type[("merchant_payment", "12.00")]
    assert payment["direction"] == "out"
    assert payment["counterparty"] == "Blue Bottle"
    assert payment["fee"] == "0.00" and payment["total"] == "12.00"  # the payer pays the price
    assert payment["note"] == "flat white"
    back = by_type[("refund", "2.00")]
    assert back["direction"] == "in" and back["counterparty"] == "Blue Bottle"

    for auth in (shop.auth, owner.auth):
        theirs = await client.get(
            f"/api/v1/merchants/{shop.merchant_id}/transactions", headers=auth
        )
        assert theirs.status_code == 200, theirs.text
        rows = theirs.json()["transactions"]
        assert {(r["type"], r["direction"], r["counterparty"]) for r in rows} == {
            ("merchant_payment", "in", payer.username),
            ("refund", "out", payer.username),
        }
    stranger = await client.get(
        f"/api/v1/merchants/{shop.merchant_id}/transactions", headers=payer.auth
    )
    assert stranger.status_code == 404


async def test_the_merchants_payments_filtered_and_paged(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    owner, payer = await make_person(), await make_person("60.00")
    shop = await open_shop(client, owner)
    made = [await pay(app, client, payer, shop, f"{n}.00") for n in range(1, 8)]
    await refund(client, shop, made[0], "0.50")

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = await client.get(
            f"/api/v1/merchants/{shop.merchant_id}/payments", params=query, headers=shop.auth
        )
        assert page.status_code == 200, page.text
        seen += page.json()["payments"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert [p["payment_id"] for p in seen] == made[::-1]
    first = seen[-1]
    assert first["refunded"] == "0.50" and first["payer"] == payer.username
    assert int(first["fee"].replace(".", "")) + int(first["net"].replace(".", "")) == 100

    today = datetime.now(UTC).date().isoformat()
    filtered = await client.get(
        f"/api/v1/merchants/{shop.merchant_id}/payments",
        params={"status": "COMPLETED", "from": today, "to": today},
        headers=owner.auth,
    )
    assert len(filtered.json()["payments"]) == 7
    for bad in ({"status": "PAID"}, {"limit": 0}, {"cursor": "nope"}, {"from": "yesterday"}):
        refused = await client.get(
            f"/api/v1/merchants/{shop.merchant_id}/payments", params=bad, headers=shop.auth
        )
        assert refused.status_code == 422, (bad, refused.text)


async def test_the_days_settlement_report(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson, tmp_path: Path
) -> None:
    owner, payer = await make_person(), await make_person("40.00")
    shop = await open_shop(client, owner, name="=SUM(A1)")  # a formula, kept as text
    paid = await pay(app, client, payer, shop, "10.00")
    await pay(app, client, payer, shop, "20.00")
    await refund(client, shop, paid, "4.00")

    out = tmp_path / "settlement.csv"
    totals = await sales.write_settlement(app.state.pool, datetime.now(UTC).date(), out)
    with out.open() as file:
        lines = [r for r in csv.DictReader(file) if r["merchant_id"] == shop.merchant_id]
    assert [r["type"] for r in lines] == ["payment", "payment", "refund", "total"]
    assert {r["merchant_name"] for r in lines} == {"'=SUM(A1)"}
    fees = sum(_minor(r["fee"]) for r in lines[:2])
    total = lines[-1]
    assert _minor(total["gross"]) == 26_00
    assert _minor(total["fee"]) == fees
    assert _minor(total["net"]) == 26_00 - fees
    assert totals[uuid.UUID(shop.merchant_id)].payments == 2
    assert await balance(app, shop) == 26_00 - fees

    # The command writes the same report.
    by_hand = tmp_path / "by-hand.csv"
    day = datetime.now(UTC).date().isoformat()
    done = billfold(
        app.state.settings, "merchants", "settlement", "--date", day, "--out", str(by_hand)
    )
    assert done.returncode == 0, done.stderr
    assert by_hand.read_text() == out.read_text()
    today = billfold(app.state.settings, "merchants", "settlement", "--out", str(by_hand))
    assert today.returncode == 0, today.stderr
    assert by_hand.read_text() == out.read_text()  # today by default
    bad = billfold(
        app.state.settings, "merchants", "settlement", "--date", "06/12/2026", "--out", "x"
    )
    assert bad.returncode != 0 and "--date" in bad.stderr and "Traceback" not in bad.stderr


async def test_a_reservation_whose_move_never_ran_is_resumed(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A process that dies between reserving a refund and moving it leaves it PENDING, its
    amount counted against the payment: resume_pending moves it (the merchant asked for it)."""
    owner, payer = await make_person(), await make_person("20.00")
    shop = await open_shop(client, owner)
    paid = await pay(app, client, payer, shop, "10.00")
    await pay(app, client, payer, shop, "5.00")
    merchant = await get_merchant(app.state.pool, shop.merchant_id)
    wanted = refunds.RefundRequest(paid, "3.00", None, str(uuid.uuid4()))
    reserved, _ = await refunds._reserve(app.state.pool, refunds.check_refund(merchant, wanted))
    assert reserved.status == "PENDING"
    before = await balance(app, shop)
    assert await refunds.resume_pending(app.state.pool, app.state.ledger, older_than_s=0) >= 1
    assert await balance(app, shop) == before - 3_00
    status = await app.state.pool.fetchval(
        "SELECT status FROM merchant_refunds WHERE id = $1", reserved.id
    )
    assert status == "COMPLETED"


def _minor(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    whole, _, cents = text.lstrip("-").partition(".")
    return sign * (int(whole) * 100 + int(cents or 0))


# A refund plan: groups of refunds sent at once, each an amount in cents or None (the rest).
refund_plans = st.lists(
    st.lists(st.one_of(st.none(), st.integers(1, 1200)), min_size=1, max_size=4),
    min_size=1,
    max_size=5,
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=refund_plans, extra=st.sampled_from([0, 300, 5000]))
async def test_refunds_against_a_model(
    plan: list[list[int | None]],
    extra: int,
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
) -> None:
    """Against a model of what is left to refund and of the merchant's money: a refund sent
    alone is made iff it fits both (else refund_exceeds_payment, payment_not_refundable or
    insufficient_funds); refunds sent at once are each judged against some order of them; and
    whatever happens, the refunds made never sum past the payment, the payment's refunded
    amount is their sum, and the merchant account is down by exactly that."""
    owner, payer = await make_person(), await make_person("200.00")
    shop = await open_shop(client, owner)
    paid = await pay(app, client, payer, shop, "10.00")
    if extra:
        await pay(app, client, payer, shop, f"{extra // 100}.{extra % 100:02d}")
    money = await balance(app, shop)
    left = 10_00
    for group in plan:
        amounts = [f"{a // 100}.{a % 100:02d}" if a else None for a in group]
        answers = await asyncio.gather(*(refund(client, shop, paid, a) for a in amounts))
        made = [a for a in answers if a.status_code == 201]
        for answer in answers:
            if answer.status_code != 201:
                assert answer.json()["code"] in (
                    "refund_exceeds_payment",
                    "payment_not_refundable",
                    "insufficient_funds",
                ), answer.text
        taken = sum(_minor(a.json()["amount"]) for a in made)
        if len(group) == 1:
            wanted = left if group[0] is None else group[0]
            fits = 0 < wanted <= left and wanted <= money
            assert bool(made) == fits, (group, left, money, answers[0].text)
        left -= taken
        money -= taken
        assert left >= 0
    row = await app.state.pool.fetchrow(
        "SELECT refunded_minor FROM merchant_payments WHERE id = $1", uuid.UUID(paid)
    )
    completed = await app.state.pool.fetchval(
        """SELECT coalesce(sum(amount_minor), 0) FROM merchant_refunds
            WHERE payment_id = $1 AND status = 'COMPLETED'""",
        uuid.UUID(paid),
    )
    assert row["refunded_minor"] == completed == 10_00 - left
    assert await balance(app, shop) == money
