"""A merchant's payouts over HTTP: asked with the owner's token and an Idempotency-Key (202
PENDING, a retry answered again), listed newest first by cursor, settled through the sandbox
partner; refused without moving anything when the merchant account is short; another person's
merchant a 404; the payout settings' PATCH and its validation."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billfold.ledger.accounts import get_account, open_clearing_account

Person = Any
MakePerson = Callable[..., Awaitable[Person]]
LinkBank = Callable[..., Awaitable[str]]
NUMBER = "000555666777"
MERCHANT = {"name": "Matrix Cafe", "mcc": "5814", "city": "Oakland", "country": "US"}
PAYOUT_FIELDS = {
    "payout_id",
    "merchant_id",
    "amount",
    "currency",
    "status",
    "bank_account_id",
    "estimated_completion",
    "return_code",
    "created_at",
}


async def merchant_with(
    app: FastAPI, client: httpx.AsyncClient, owner: Person, balance_minor: int
) -> dict[str, Any]:
    """A business profile of the owner's, its merchant account holding `balance_minor` (moved
    in from a test clearing account, as payments to it would)."""
    made = await client.post("/api/v1/merchants", json=MERCHANT, headers=owner.auth)
    assert made.status_code == 201, made.text
    merchant: dict[str, Any] = made.json()
    account_id = await app.state.pool.fetchval(
        "SELECT account_id FROM merchants WHERE id = $1", uuid.UUID(merchant["merchant_id"])
    )
    bank = await open_clearing_account(app.state.pool, "USD", name="test:bank_clearing:USD")
    await app.state.ledger.move(
        "test",
        str(uuid.uuid4()),
        debit_account_id=bank.id,
        credit_account_id=account_id,
        amount_minor=balance_minor,
        currency="USD",
        code="test",
    )
    merchant["account_id"] = account_id
    return merchant


def keyed(person: Person, key: str | None = None) -> dict[str, str]:
    return {**person.auth, "Idempotency-Key": key or uuid.uuid4().hex}


async def test_a_payout_is_202_pending_answered_again_listed_and_settled(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson, link_bank: LinkBank
) -> None:
    """202 PENDING with its fields (the bank account by id only); the same key answers the
    same payout (Idempotent-Replayed); the list pages newest first; the sandbox partner settles
    it (COMPLETED), and GET /transfers/{payout_id} shows it too."""
    owner = await make_person()
    bank = await link_bank(owner, NUMBER)
    merchant = await merchant_with(app, client, owner, 50_00)
    path = f"/api/v1/merchants/{merchant['merchant_id']}/payouts"
    key = uuid.uuid4().hex
    body = {"amount": "12.50", "bank_account_id": bank}
    first = await client.post(path, json=body, headers=keyed(owner, key))
    assert first.status_code == 202, first.text
    payout = first.json()
    assert set(payout) == PAYOUT_FIELDS
    assert (payout["status"], payout["amount"], payout["currency"]) == ("PENDING", "12.50", "USD")
    assert (payout["merchant_id"], payout["bank_account_id"]) == (merchant["merchant_id"], bank)
    assert NUMBER not in first.text
    again = await client.post(path, json=body, headers=keyed(owner, key))
    assert again.status_code == 202, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["payout_id"] == payout["payout_id"]
    second = await client.post(path, json={**body, "amount": "2.00"}, headers=keyed(owner))
    assert second.status_code == 202, second.text
    account = await get_account(app.state.pool, merchant["account_id"])
    assert (account.posted_minor, account.available_minor) == (50_00, 35_50)

    page = await client.get(path, params={"limit": 1}, headers=owner.auth)
    assert page.status_code == 200, page.text
    assert [p["payout_id"] for p in page.json()["payouts"]] == [second.json()["payout_id"]]
    cursor = page.json()["next_cursor"]
    rest = await client.get(path, params={"limit": 1, "cursor": cursor}, headers=owner.auth)
    assert [p["payout_id"] for p in rest.json()["payouts"]] == [payout["payout_id"]]
    assert rest.json()["next_cursor"] is None

    settled = await client.post(
        f"/api/v1/sandbox/ach/{payout['payout_id']}/settle", headers=owner.auth
    )
    assert settled.json()["status"] == "applied", settled.text
    one = await client.get(f"{path}/{payout['payout_id']}", headers=owner.auth)
    assert one.json()["status"] == "COMPLETED"
    transfer = await client.get(f"/api/v1/transfers/{payout['payout_id']}", headers=owner.auth)
    assert (transfer.json()["type"], transfer.json()["status"]) == ("payout", "COMPLETED")
    history = await client.get(
        f"/api/v1/merchants/{merchant['merchant_id']}/transactions",
        params={"type": "payout"},
        headers=owner.auth,
    )
    assert history.status_code == 200, history.text
    rows = history.json()["transactions"]
    assert [(r["id"], r["type"], r["amount"], r["status"]) for r in rows] == [
        (payout["payout_id"], "payout", "12.50", "COMPLETED"),  # newest: settled after
        (second.json()["payout_id"], "payout", "2.00", "PENDING"),
    ]


async def test_a_payout_over_the_merchants_balance_is_422_and_moves_nothing(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson, link_bank: LinkBank
) -> None:
    """insufficient_funds, though the owner's own wallet could pay it: nothing held, nothing
    listed."""
    owner = await make_person("100.00")
    bank = await link_bank(owner, NUMBER)
    merchant = await merchant_with(app, client, owner, 5_00)
    path = f"/api/v1/merchants/{merchant['merchant_id']}/payouts"
    refused = await client.post(
        path, json={"amount": "5.01", "bank_account_id": bank}, headers=keyed(owner)
    )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "insufficient_funds"
    account = await get_account(app.state.pool, merchant["account_id"])
    assert (account.posted_minor, account.available_minor) == (5_00, 5_00)
    listed = await client.get(path, headers=owner.auth)
    assert listed.json() == {"payouts": [], "next_cursor": None}
    wallet = await client.get(f"/api/v1/wallet/{owner.user_id}", headers=owner.auth)
    assert wallet.json()["balance"] == "100.00"


async def test_another_persons_merchant_and_payouts_are_404(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson, link_bank: LinkBank
) -> None:
    """Eve, naming Alice's merchant or its payout, gets the 404 of an id that names nothing;
    Alice's merchant keeps its money."""
    alice, eve = await make_person(), await make_person()
    bank = await link_bank(alice, NUMBER)
    eves_bank = await link_bank(eve, NUMBER)
    merchant = await merchant_with(app, client, alice, 10_00)
    path = f"/api/v1/merchants/{merchant['merchant_id']}"
    made = await client.post(
        f"{path}/payouts", json={"amount": "1.00", "bank_account_id": bank}, headers=keyed(alice)
    )
    payout_id = made.json()["payout_id"]
    answers = [
        await client.post(
            f"{path}/payouts",
            json={"amount": "1.00", "bank_account_id": eves_bank},
            headers=keyed(eve),
        ),
        await client.get(f"{path}/payouts", headers=eve.auth),
        await client.get(f"{path}/payouts/{payout_id}", headers=eve.auth),
        await client.patch(path, json={"payout_schedule": "manual"}, headers=eve.auth),
        await client.get(f"{path}/payouts/{uuid.uuid4()}", headers=alice.auth),
    ]
    assert [(r.status_code, r.json()["code"]) for r in answers] == [(404, "not_found")] * 5
    account = await get_account(app.state.pool, merchant["account_id"])
    assert account.available_minor == 9_00


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"payout_schedule": "daily"}, "payout_bank_account_id"),
        ({"payout_schedule": "hourly"}, "payout_schedule"),
        ({}, "payout_schedule"),
    ],
)
async def test_a_patch_that_cannot_apply_is_422_naming_the_field(
    app: FastAPI,
    client: httpx.AsyncClient,
    make_person: MakePerson,
    body: dict[str, Any],
    field: str,
) -> None:
    owner = await make_person()
    merchant = await merchant_with(app, client, owner, 1_00)
    path = f"/api/v1/merchants/{merchant['merchant_id']}"
    refused = await client.patch(path, json=body, headers=owner.auth)
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == field
    shown = await client.get(path, headers=owner.auth)
    assert shown.json()["payout_schedule"] == "manual"


async def test_daily_payouts_are_turned_on_with_a_verified_account_and_off_again(
    app: FastAPI, client: httpx.AsyncClient, make_person: MakePerson, link_bank: LinkBank
) -> None:
    """daily with a verified account of the owner's; an unverified one is 422; manual clears
    the account; GET shows the settings."""
    owner = await make_person()
    bank = await link_bank(owner, NUMBER)
    unverified = await link_bank(owner, "12312312", verified=False)
    merchant = await merchant_with(app, client, owner, 1_00)
    path = f"/api/v1/merchants/{merchant['merchant_id']}"
    not_yet = await client.patch(
        path,
        json={"payout_schedule": "daily", "payout_bank_account_id": unverified},
        headers=owner.auth,
    )
    assert not_yet.status_code == 422, not_yet.text
    assert not_yet.json()["code"] == "bank_account_not_verified"
    daily = await client.patch(
        path, json={"payout_schedule": "daily", "payout_bank_account_id": bank}, headers=owner.auth
    )
    assert daily.status_code == 200, daily.text
    assert (daily.json()["payout_schedule"], daily.json()["payout_bank_account_id"]) == (
        "daily",
        bank,
    )
    manual = await client.patch(
        path, json={"payout_schedule": "manual", "payout_bank_account_id": None}, headers=owner.auth
    )
    assert (manual.json()["payout_schedule"], manual.json()["payout_bank_account_id"]) == (
        "manual",
        None,
    )
    shown = await client.get(path, headers=owner.auth)
    assert shown.json() == manual.json()
