"""Issue 28, paying merchants over HTTP: a static code with the amount typed, a checkout
session's dynamic code or its id, each session paid once, the fee out of the price, payments
the risk checks hold or decline. The ledger reconciles after every test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billfold.events import outbox
from billfold.ledger.reconcile import reconcile
from billfold.merchants import checkout, qr
from billfold.merchants.fees import merchant_fee_minor
from billfold.wallet.users import grant_admin
from billfold.webhooks import fanout
from tests.api.driver import Person, balances, decide, problem, reviews, set_pin, verify
from tests.merchants.shop import (
    fee_revenue,
    merchant_balance,
    open_session,
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


async def test_a_payment_held_for_the_pin_pays_the_session_once_confirmed(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """From a new phone the risk checks ask for the PIN: 202 PENDING_VERIFICATION, the money
    held, the session kept for this payer (another is refused); the PIN at
    POST /transfers/{transfer_id}/verify completes it and pays the session."""
    owner, payer, other = await make_person(), await make_person("40.00"), await make_person("9.00")
    shop = await open_shop(client, owner)
    await set_pin(client, payer, pin="2468", password=payer.password)
    opened = await session(client, shop, "8.00")
    held = await pay(
        client,
        payer,
        headers={"X-Device-Id": payer.device("new-phone")},
        qr_payload=opened["qr_payload"],
    )
    assert held.status_code == 202, held.text
    payment = held.json()
    assert payment["status"] == "PENDING_VERIFICATION"
    assert await balances(client, payer) == ("40.00", "32.00")
    assert await merchant_balance(app, shop) == 0
    assert problem(await pay(client, other, session_id=opened["session_id"])) == (
        409,
        "session_not_open",
    )
    path = f"/api/v1/checkout/sessions/{opened['session_id']}"
    assert (await client.get(path, headers=shop.auth)).json()["status"] == "open"
    confirmed = await verify(client, payer, payment["transfer_id"], "2468")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "COMPLETED"
    shown = await client.get(f"/api/v1/payments/{payment['payment_id']}", headers=payer.auth)
    assert shown.json()["status"] == "COMPLETED"
    assert (await client.get(path, headers=shop.auth)).json()["payment_id"] == payment["payment_id"]
    assert await balances(client, payer) == ("32.00", "32.00")
    assert await merchant_balance(app, shop) == 8_00 - fee(8_00)
    events = await told(app, session_id=opened["session_id"])
    assert [kind for kind, _ in events] == [
        "checkout.session.created",
        "payment.held",
        "payment.completed",
        "checkout.session.paid",
    ]
    assert events[1][1]["transfer_id"] == payment["transfer_id"]
    assert events[1][1]["waiting_for"] == "verification"
    # Told as a payment, not as a held P2P transfer too.
    hold = f"transfer/{payment['transfer_id']}"
    transfer_events = await app.state.pool.fetch("SELECT type FROM outbox WHERE subject = $1", hold)
    assert [row["type"] for row in transfer_events] == []


async def test_a_payment_held_for_review_and_rejected_opens_the_session_again(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A payment to a merchant whose owner is flagged waits for review: the operator (never
    the owner) rejects it, the money goes back, the payment is DECLINED and the session is
    open for another payer."""
    owner, payer, later = await make_person(), await make_person("40.00"), await make_person("9.00")
    analyst = await make_person()
    await grant_admin(app.state.pool, analyst.username)
    shop = await open_shop(client, owner)
    opened = await session(client, shop, "6.00")
    await app.state.pool.execute(
        "UPDATE users SET flagged = true WHERE id = $1", uuid.UUID(owner.user_id)
    )
    try:
        held = await pay(client, payer, session_id=opened["session_id"])
    finally:
        await app.state.pool.execute(
            "UPDATE users SET flagged = false WHERE id = $1", uuid.UUID(owner.user_id)
        )
    assert held.status_code == 202, held.text
    payment = held.json()
    assert payment["status"] == "PENDING_REVIEW"
    queued = [r for r in await reviews(client, analyst) if r["review_id"] == payment["transfer_id"]]
    assert [(r["type"], r["sender_id"], r["recipient_id"]) for r in queued] == [
        ("merchant_payment", payer.user_id, owner.user_id)
    ]
    rejected = await decide(client, analyst, payment["transfer_id"], "reject")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "DECLINED"
    shown = await client.get(f"/api/v1/payments/{payment['payment_id']}", headers=payer.auth)
    assert shown.json()["status"] == "DECLINED"
    assert await balances(client, payer) == ("40.00", "40.00")
    assert await merchant_balance(app, shop) == 0
    path = f"/api/v1/checkout/sessions/{opened['session_id']}"
    assert (await client.get(path, headers=shop.auth)).json()["status"] == "open"
    declined = [d for k, d in await told(app, session_id=opened["session_id"]) if "declined" in k]
    assert [(d["status"], d["reason"]) for d in declined] == [("DECLINED", "review")]
    paid = await pay(client, later, session_id=opened["session_id"])
    assert paid.status_code == 201, paid.text
    assert await merchant_balance(app, shop) == 6_00 - fee(6_00)
    again = await pay(client, payer, key="retry", session_id=opened["session_id"])
    assert problem(again) == (409, "session_not_open")


async def test_a_payment_the_risk_checks_decline_moves_nothing_and_frees_the_session(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A payer known at home in the US pays from a new device in a new country: declined at
    once (403), nothing held or moved, the session free for the next payer, the decline told
    with no payment."""
    owner, thief, buyer = await make_person(), await make_person("90.00"), await make_person("9.00")
    shop = await open_shop(client, owner)
    at_home = await pay(client, thief, qr_payload=shop.static_qr(), amount="1.00")
    assert at_home.status_code == 201, at_home.text
    opened = await session(client, shop, "4.00")
    where = {"X-Device-Id": thief.device("thief-phone"), "X-Client-Country": "RO"}
    declined = await pay(client, thief, headers=where, session_id=opened["session_id"])
    assert problem(declined) == (403, "declined_by_risk")
    assert await balances(client, thief) == ("89.00", "89.00")
    assert await merchant_balance(app, shop) == 1_00 - fee(1_00)
    told_of = await told(app, session_id=opened["session_id"])
    assert [(k, d["payment_id"], d.get("reason")) for k, d in told_of][1:] == [
        ("payment.declined", None, "risk_checks")
    ]
    paid = await pay(client, buyer, session_id=opened["session_id"])
    assert paid.status_code == 201, paid.text


async def test_a_changed_pin_sends_the_held_payment_to_review_and_an_approval_pays(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """A PIN changed within a day answers the step-up: the payment waits for review, its money
    held (told as payment.held again); the operator's approval completes it and pays the
    session."""
    owner, payer, analyst = await make_person(), await make_person("40.00"), await make_person()
    await grant_admin(app.state.pool, analyst.username)
    await set_pin(client, payer, pin="1357", password=payer.password)
    await set_pin(client, payer, pin="8642", password=payer.password)
    shop = await open_shop(client, owner)
    opened = await session(client, shop, "9.00")
    new_phone = {"X-Device-Id": payer.device("new-phone")}
    held = (await pay(client, payer, headers=new_phone, session_id=opened["session_id"])).json()
    assert held["status"] == "PENDING_VERIFICATION"
    answered = await verify(client, payer, held["transfer_id"], "8642")
    assert answered.json()["status"] == "PENDING_REVIEW"
    path = f"/api/v1/payments/{held['payment_id']}"
    assert (await client.get(path, headers=shop.auth)).json()["status"] == "PENDING_REVIEW"
    approved = await decide(client, analyst, held["transfer_id"], "approve")
    assert approved.json()["status"] == "COMPLETED", approved.text
    assert (await client.get(path, headers=payer.auth)).json()["status"] == "COMPLETED"
    assert await merchant_balance(app, shop) == 9_00 - fee(9_00)
    events = await told(app, session_id=opened["session_id"])
    assert [(k, d.get("waiting_for")) for k, d in events] == [
        ("checkout.session.created", None),
        ("payment.held", "verification"),
        ("payment.held", "review"),
        ("payment.completed", None),
        ("checkout.session.paid", None),
    ]


async def test_three_wrong_pins_decline_the_held_payment_and_free_the_session(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """The third wrong PIN declines the held payment: its money released, the session open for
    another payer, told as payment.declined (wrong_pin)."""
    owner, payer, later = await make_person(), await make_person("40.00"), await make_person("9.00")
    await set_pin(client, payer, pin="2468", password=payer.password)
    shop = await open_shop(client, owner)
    opened = await session(client, shop, "2.00")
    new_phone = {"X-Device-Id": payer.device("new-phone")}
    held = (await pay(client, payer, headers=new_phone, session_id=opened["session_id"])).json()
    answers = [await verify(client, payer, held["transfer_id"], "1111") for _ in range(3)]
    assert [problem(a) for a in answers] == [(403, "wrong_pin")] * 3
    assert [a.json()["transfer_status"] for a in answers] == [
        "PENDING_VERIFICATION",
        "PENDING_VERIFICATION",
        "DECLINED",
    ]
    shown = await client.get(f"/api/v1/payments/{held['payment_id']}", headers=payer.auth)
    assert shown.json()["status"] == "DECLINED"
    assert await balances(client, payer) == ("40.00", "40.00")
    declined = [d for k, d in await told(app, session_id=opened["session_id"]) if "declined" in k]
    assert [d["reason"] for d in declined] == ["wrong_pin"]
    assert (await pay(client, later, session_id=opened["session_id"])).status_code == 201


async def test_a_session_past_its_time_is_expired_once_on_reading_or_paying_or_by_the_sweep(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Past expires_at a session is expired: a payment is refused (409), a read shows it, the
    sweep expires the others; each is told as checkout.session.expired exactly once."""
    owner, payer = await make_person(), await make_person("40.00")
    shop = await open_shop(client, owner)
    read, paid, swept = [await session(client, shop, "1.00") for _ in range(3)]
    ids = [uuid.UUID(s["session_id"]) for s in (read, paid, swept)]
    await app.state.pool.execute(
        "UPDATE checkout_sessions SET expires_at = now() - interval '1 second' WHERE id = ANY($1)",
        ids,
    )
    path = f"/api/v1/checkout/sessions/{read['session_id']}"
    assert (await client.get(path, headers=shop.auth)).json()["status"] == "expired"
    refused = await pay(client, payer, qr_payload=paid["qr_payload"])
    assert problem(refused) == (409, "session_not_open")
    assert refused.json()["session_status"] == "expired"
    assert await checkout.expire_due(app.state.pool) >= 1
    assert await checkout.expire_due(app.state.pool) == 0
    for made in (read, paid, swept):
        events = [kind for kind, _ in await told(app, session_id=made["session_id"])]
        assert events == ["checkout.session.created", "checkout.session.expired"]
    assert await wallet_minor(app, payer) == 40_00


async def test_a_canceled_session_cannot_be_paid_and_a_paid_one_cannot_be_canceled(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Cancel once (again: answered as it is, told once); a canceled session refuses payment;
    a paid one refuses cancelling."""
    owner, payer = await make_person(), await make_person("40.00")
    shop = await open_shop(client, owner)
    canceled, paid = await session(client, shop, "2.00"), await session(client, shop, "2.00")
    path = f"/api/v1/checkout/sessions/{canceled['session_id']}/cancel"
    for _ in range(2):
        answer = await client.post(path, headers=shop.auth)
        assert answer.status_code == 200 and answer.json()["status"] == "canceled", answer.text
    assert problem(await pay(client, payer, session_id=canceled["session_id"])) == (
        409,
        "session_not_open",
    )
    assert (await pay(client, payer, session_id=paid["session_id"])).status_code == 201
    late = await client.post(
        f"/api/v1/checkout/sessions/{paid['session_id']}/cancel", headers=shop.auth
    )
    assert problem(late) == (409, "session_not_open")
    kinds = [kind for kind, _ in await told(app, session_id=canceled["session_id"])]
    assert kinds == ["checkout.session.created", "checkout.session.canceled"]
    assert await wallet_minor(app, payer) == 38_00


STATE = """
SELECT (SELECT count(*) FROM merchant_payments) AS payments,
       (SELECT count(*) FROM transfers) AS transfers,
       (SELECT count(*) FROM checkout_sessions WHERE claimed_by IS NOT NULL) AS claimed,
       (SELECT count(*) FROM checkout_sessions WHERE status <> 'open') AS closed,
       (SELECT count(*) FROM outbox WHERE type LIKE 'billfold.payment.%') AS told
"""


def foreign_code() -> str:
    """A merchant-presented code of another network (no Billfold template in field 26)."""
    account = "0014com.example.pay0105shop1"
    text = f"000201010211{26}{len(account):02d}{account}52045462530384058" + "02US"
    text += "5905Baker6007Oakland6304"
    return text + qr.crc16(text)


async def test_every_bad_payment_is_a_4xx_naming_what_is_wrong_and_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Neither or both of a code and a session; an amount missing from a static code or given
    with a session; a code misread, of another network, or whose merchant or amount is not
    its session's; what names nothing; a note too long; a suspended merchant; one's own
    merchant; a frozen wallet; too little money: each refused, naming its field, and no
    payment, transfer, claim or event is made."""
    owner, payer = await make_person(), await make_person("5.00")
    shop, other = await open_shop(client, owner), await open_shop(client, await make_person())
    opened = await session(client, shop, "4.00")
    sid = opened["session_id"]
    merchant = uuid.UUID(shop.merchant_id)

    def dynamic(merchant_id: uuid.UUID, amount_minor: int, session_id: str = sid) -> str:
        p = shop.profile
        return qr.encode(
            qr.Payload(
                merchant_id, p["mcc"], "USD", p["country"], p["name"], p["city"],
                amount_minor, session_id,
            )
        )  # fmt: skip

    static = shop.static_qr()
    misread = static[:-1] + ("0" if static[-1] != "0" else "1")
    cases: list[tuple[dict[str, Any], int, str, str | None]] = [
        ({}, 422, "validation_error", "qr_payload"),
        ({"qr_payload": static, "session_id": sid}, 422, "validation_error", "qr_payload"),
        ({"qr_payload": static}, 422, "validation_error", "amount"),
        ({"qr_payload": static, "amount": "1.234"}, 422, "invalid_amount", "amount"),
        ({"qr_payload": opened["qr_payload"], "amount": "4.00"}, 422, "validation_error", "amount"),
        ({"session_id": sid, "amount": "4.00"}, 422, "validation_error", "amount"),
        ({"qr_payload": misread, "amount": "1.00"}, 422, "validation_error", "qr_payload.63"),
        (
            {"qr_payload": foreign_code(), "amount": "1.00"},
            422,
            "validation_error",
            "qr_payload.26",
        ),
        ({"qr_payload": dynamic(merchant, 399)}, 422, "validation_error", "qr_payload.54"),
        (
            {"qr_payload": dynamic(uuid.UUID(other.merchant_id), 400)},
            422,
            "validation_error",
            "qr_payload.26",
        ),
        ({"qr_payload": dynamic(merchant, 400, str(uuid.uuid4()))}, 404, "not_found", None),
        (
            {"qr_payload": dynamic(merchant, 400, "order-17")},
            422,
            "validation_error",
            "qr_payload.62",
        ),
        ({"session_id": str(uuid.uuid4())}, 404, "not_found", None),
        ({"session_id": "not-an-id"}, 404, "not_found", None),
        ({"session_id": sid, "note": "x" * 281}, 422, "validation_error", "note"),
    ]
    unknown = qr.Payload(uuid.uuid4(), "5462", "USD", "US", "Nobody", "Nowhere")
    cases.append(({"qr_payload": qr.encode(unknown), "amount": "1.00"}, 404, "not_found", None))
    before = await app.state.pool.fetchrow(STATE)
    wrong = []
    for body, status, code, field in cases:
        answer = await pay(client, payer, **body)
        named = answer.json().get("field") if answer.status_code < 500 else None
        if (answer.status_code, answer.json().get("code"), named) != (status, code, field):
            wrong.append(f"{body}: {answer.status_code} {answer.text}")
    assert not wrong, "\n".join(wrong)
    unkeyed = await client.post(
        "/api/v1/payments", json={"session_id": sid}, headers={**payer.auth}
    )
    assert problem(unkeyed) == (422, "validation_error")
    assert unkeyed.json()["field"] == "idempotency_key"
    assert problem(await pay(client, owner, session_id=sid)) == (422, "self_payment")
    poor = await pay(client, payer, qr_payload=static, amount="9.00")
    assert problem(poor) == (422, "insufficient_funds")
    await app.state.pool.execute(
        "UPDATE merchants SET status = 'suspended' WHERE id = $1", merchant
    )
    suspended = await pay(client, payer, session_id=sid)
    await app.state.pool.execute("UPDATE merchants SET status = 'active' WHERE id = $1", merchant)
    assert problem(suspended) == (409, "merchant_suspended")
    await app.state.pool.execute(
        "UPDATE users SET status = 'frozen' WHERE id = $1", uuid.UUID(payer.user_id)
    )
    frozen = await pay(client, payer, session_id=sid)
    await app.state.pool.execute(
        "UPDATE users SET status = 'active' WHERE id = $1", uuid.UUID(payer.user_id)
    )
    assert problem(frozen) == (403, "wallet_frozen")
    assert dict(await app.state.pool.fetchrow(STATE)) == dict(before)
    assert await wallet_minor(app, payer) == 5_00
    assert (await pay(client, payer, session_id=sid)).status_code == 201


async def test_a_checkout_session_is_opened_once_per_key_and_its_inputs_are_checked(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """The merchant's key opens a session (the same key and body: the same session, replayed;
    another body: refused); a bad amount, reference or expiry is a 422 naming it; a person's
    token is no merchant key (401); another merchant's key finds nothing (404)."""
    owner = await make_person()
    shop, other = await open_shop(client, owner), await open_shop(client, await make_person())
    first = await open_session(client, shop, "5.00", key="order-1", reference="A-17")
    again = await open_session(client, shop, "5.00", key="order-1", reference="A-17")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["session_id"] == first.json()["session_id"]
    assert first.json()["reference"] == "A-17"
    made = first.json()
    expires = datetime.fromisoformat(made["expires_at"]) - datetime.fromisoformat(
        made["created_at"]
    )
    assert expires.total_seconds() == 900
    payload = qr.decode(made["qr_payload"])
    assert (payload.session_id, payload.amount_minor) == (made["session_id"], 5_00)
    assert payload.merchant_id == uuid.UUID(shop.merchant_id)
    reused = await open_session(client, shop, "6.00", key="order-1")
    assert problem(reused) == (422, "idempotency_key_reused")
    bad: list[tuple[dict[str, Any], str, str]] = [
        ({"amount": "0.00"}, "invalid_amount", "amount"),
        ({"amount": "10000000000.00"}, "validation_error", "amount"),
        ({"amount": "1.00", "reference": ""}, "validation_error", "reference"),
        ({"amount": "1.00", "reference": "r" * 65}, "validation_error", "reference"),
        ({"amount": "1.00", "expires_in_s": 59}, "validation_error", "expires_in_s"),
        ({"amount": "1.00", "expires_in_s": 86_401}, "validation_error", "expires_in_s"),
        ({"amount": "1.00", "expires_in_s": "900"}, "validation_error", "expires_in_s"),
        ({"amount": "1.00", "expires_in_s": 90.5}, "validation_error", "expires_in_s"),
    ]
    before = await app.state.pool.fetchval("SELECT count(*) FROM checkout_sessions")
    for body, code, field in bad:
        answer = await open_session(client, shop, **body)
        assert (problem(answer), answer.json()["field"]) == ((422, code), field), answer.text
    unkeyed = await client.post(
        "/api/v1/checkout/sessions", json={"amount": "1.00"}, headers=shop.auth
    )
    assert unkeyed.json()["field"] == "idempotency_key"
    assert await app.state.pool.fetchval("SELECT count(*) FROM checkout_sessions") == before
    short = await open_session(client, shop, "1.00", expires_in_s=60)
    assert short.status_code == 201, short.text
    path = f"/api/v1/checkout/sessions/{made['session_id']}"
    for headers in (owner.auth, {"Authorization": "Bearer sk_nothing"}, {}):
        assert problem(await client.get(path, headers=headers)) == (401, "unauthenticated")
    assert problem(await client.get(path, headers=other.auth)) == (404, "not_found")
    assert problem(await client.post(f"{path}/cancel", headers=other.auth)) == (404, "not_found")
    assert (await client.get(path, headers=shop.auth)).json()["status"] == "open"


async def test_a_payment_is_shown_to_its_payer_and_its_merchant_only(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """Anyone else, a person or another merchant's key, gets the 404 of a payment that does
    not exist."""
    owner, payer, stranger = await make_person(), await make_person("5.00"), await make_person()
    shop, other = await open_shop(client, owner), await open_shop(client, stranger)
    paid = await pay(client, payer, qr_payload=shop.static_qr(), amount="1.00")
    path = f"/api/v1/payments/{paid.json()['payment_id']}"
    for headers in (payer.auth, owner.auth, shop.auth):
        assert (await client.get(path, headers=headers)).status_code == 200
    for headers in (stranger.auth, other.auth):
        assert problem(await client.get(path, headers=headers)) == (404, "not_found")
    missing = f"/api/v1/payments/{uuid.uuid4()}"
    assert problem(await client.get(missing, headers=payer.auth)) == (404, "not_found")


async def test_the_owners_and_the_payers_endpoints_get_the_payment_events(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson
) -> None:
    """The events name the people they concern: the webhooks group delivers a session's
    events to the merchant's owner, a payment's to the owner and the payer, each to the
    endpoints that ask for its kind."""
    owner, payer = await make_person(), await make_person("10.00")
    shop = await open_shop(client, owner)
    endpoints = {}
    for name, person, kinds in (
        ("owner", owner, ["payment.completed", "checkout.session.paid"]),
        # Not "*": the app's own relay and webhooks group may fan the ledger's
        # transfer.completed out to it meanwhile.
        ("payer", payer, ["payment.completed", "checkout.session.paid"]),
    ):
        made = await client.post(
            "/api/v1/webhook-endpoints",
            json={"url": "https://hooks.example.com/shop", "event_types": kinds},
            headers=person.auth,
        )
        assert made.status_code == 201, made.text
        endpoints[name] = uuid.UUID(made.json()["endpoint_id"])
    opened = await session(client, shop, "2.00")
    assert (await pay(client, payer, session_id=opened["session_id"])).status_code == 201
    rows = await app.state.pool.fetch(
        "SELECT * FROM outbox WHERE data->>'session_id' = $1 ORDER BY id", opened["session_id"]
    )
    await fanout.fan_out(app.state.pool, [outbox.cloudevent(row) for row in rows])
    delivered = await app.state.pool.fetch(
        """SELECT endpoint_id, event_type FROM webhook_deliveries
            WHERE endpoint_id = ANY($1) ORDER BY id""",
        list(endpoints.values()),
    )
    by_endpoint = {
        name: sorted(r["event_type"] for r in delivered if r["endpoint_id"] == endpoint)
        for name, endpoint in endpoints.items()
    }
    assert by_endpoint == {
        "owner": ["checkout.session.paid", "payment.completed"],
        "payer": ["payment.completed"],
    }
