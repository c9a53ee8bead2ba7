"""Issue 28, paying merchants over HTTP: a static code with the amount typed, a checkout
session's dynamic code or its id, each session paid once, the fee out of the price, payments
the risk checks hold or decline. The ledger reconciles after every test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billfold.ledger.reconcile import reconcile
from billfold.merchants.fees import merchant_fee_minor
from tests.api.driver import Person, problem
from tests.merchants.shop import (
    fee_revenue,
    merchant_balance,
    open_shop,
    pay,
    session,
    told,
    wallet_minor,
)

MakePerson = Callable[..., Awaitable[Person]]


@pytest.fixture(autouse=True)
async def ledger_reconciles(app: FastAPI) -> AsyncIterator[None]:
    """After every test: the ledger reconciles."""
    yield
    report = await reconcile(app.state.pool)
    assert report.ok, report.render()


def fee(amount_minor: int) -> int:
    """The fee at the default settings (190 bps, half up, and 10 cents)."""
    return merchant_fee_minor(amount_minor, 190, 10)


async def test_a_static_code_is_paid_with_the_amount_typed(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """The payer pays the price and sees no fee; the merchant gets the price less the fee
    (1.9% half up, and 10 cents), fee revenue the fee, in one ledger transfer."""
    owner, payer = await make_person(), await make_person("50.00")
    shop = await open_shop(client, owner)
    fees_before = await fee_revenue(app)
    paid = await pay(client, payer, qr_payload=shop.static_qr(), amount="10.00", note="bread")
    assert paid.status_code == 201, paid.text
    body = paid.json()
    assert body["status"] == "COMPLETED"
    assert (body["merchant_id"], body["merchant_name"]) == (shop.merchant_id, "Corner Bakery")
    assert (body["amount"], body["currency"], body["note"]) == ("10.00", "USD", "bread")
    assert "fee" not in body and "net_amount" not in body
    assert fee(10_00) == 29
    assert await wallet_minor(app, payer) == 40_00
    assert await merchant_balance(app, shop) == 10_00 - 29
    assert await fee_revenue(app) - fees_before == 29
    transfer = await app.state.ledger.get_transfer(int(body["transfer_id"]))
    assert transfer.code == "merchant_payment"
    assert sorted(e.amount_minor for e in transfer.entries) == [-10_00, 29, 10_00 - 29]
    assert transfer.metadata == {
        "payment_id": body["payment_id"],
        "merchant_id": shop.merchant_id,
        "merchant_name": "Corner Bakery",
        "payer_id": payer.user_id,
        "note": "bread",
    }
    path = f"/api/v1/payments/{body['payment_id']}"
    as_payer = (await client.get(path, headers=payer.auth)).json()
    assert as_payer == body
    for headers in (shop.auth, owner.auth):
        as_merchant = (await client.get(path, headers=headers)).json()
        assert (as_merchant["fee"], as_merchant["net_amount"]) == ("0.29", "9.71")
    assert [kind for kind, _ in await told(app, payment_id=body["payment_id"])] == [
        "payment.completed"
    ]


async def test_a_dynamic_code_pays_its_session_once_told_to_the_merchant(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A checkout session's QR code carries its amount: the payer gives none, the session is
    paid, and the merchant's owner and the payer are named in every event."""
    owner, payer = await make_person(), await make_person("50.00")
    shop = await open_shop(client, owner)
    opened = await session(client, shop, "12.50")
    assert (opened["status"], opened["amount"]) == ("open", "12.50")
    paid = await pay(client, payer, qr_payload=opened["qr_payload"])
    assert paid.status_code == 201, paid.text
    payment = paid.json()
    assert (payment["session_id"], payment["amount"]) == (opened["session_id"], "12.50")
    shown = await client.get(f"/api/v1/checkout/sessions/{opened['session_id']}", headers=shop.auth)
    assert shown.json()["status"] == "paid"
    assert shown.json()["payment_id"] == payment["payment_id"]
    assert shown.json()["closed_at"] is not None
    assert await merchant_balance(app, shop) == 12_50 - fee(12_50)
    events = await told(app, session_id=opened["session_id"])
    assert [kind for kind, _ in events] == [
        "checkout.session.created",
        "payment.completed",
        "checkout.session.paid",
    ]
    assert all(data["owner_id"] == owner.user_id for _, data in events)
    assert events[1][1]["payer_id"] == payer.user_id
    assert events[2][1]["payment_id"] == payment["payment_id"]
    again = await pay(client, await make_person("50.00"), qr_payload=opened["qr_payload"])
    assert problem(again) == (409, "session_not_open")


async def test_a_session_is_paid_by_its_id(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """The in-app checkout: the payer's app names the session."""
    owner, payer = await make_person(), await make_person("20.00")
    shop = await open_shop(client, owner)
    opened = await session(client, shop, "3.00")
    paid = await pay(client, payer, session_id=opened["session_id"])
    assert paid.status_code == 201, paid.text
    assert paid.json()["amount"] == "3.00"
    assert await wallet_minor(app, payer) == 17_00
    assert await merchant_balance(app, shop) == 3_00 - fee(3_00)


async def test_a_session_is_paid_once_by_fifty_payers_at_once(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Fifty payers scan one code at the same moment: one pays (201), the 49 others are told
    the session is not open (409) and keep their money; the merchant is paid once."""
    owner = await make_person()
    payers = [await make_person("20.00") for _ in range(50)]
    shop = await open_shop(client, owner)
    opened = await session(client, shop, "7.00")
    answers = await asyncio.gather(
        *(pay(client, payer, qr_payload=opened["qr_payload"]) for payer in payers)
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] + [409] * 49, [a.text for a in answers if a.status_code >= 500]
    assert {problem(a) for a in answers if a.status_code == 409} == {(409, "session_not_open")}
    balances = [await wallet_minor(app, payer) for payer in payers]
    assert sorted(balances) == [13_00] + [20_00] * 49
    assert await merchant_balance(app, shop) == 7_00 - fee(7_00)
    paid = [kind for kind, _ in await told(app, session_id=opened["session_id"])]
    assert paid.count("checkout.session.paid") == 1 and paid.count("payment.completed") == 1


async def test_a_retry_with_the_same_key_is_answered_as_the_first_was(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """The same key and body: the first payment, replayed, nothing moved twice; the same key
    for another payment is refused."""
    owner, payer = await make_person(), await make_person("30.00")
    shop = await open_shop(client, owner)
    opened = await session(client, shop, "5.00")
    first = await pay(client, payer, key="k-1", session_id=opened["session_id"])
    again = await pay(client, payer, key="k-1", session_id=opened["session_id"])
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert await wallet_minor(app, payer) == 25_00
    other = await pay(client, payer, key="k-1", qr_payload=shop.static_qr(), amount="1.00")
    assert problem(other) == (422, "idempotency_key_reused")
    assert await wallet_minor(app, payer) == 25_00
