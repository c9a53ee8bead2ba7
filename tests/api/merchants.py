"""The merchants' side of the API tests: a business profile with a key, and payments to it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from billfold.ledger.accounts import open_system_account
from billfold.merchants.profiles import get_merchant
from tests.api.driver import Person


@dataclass
class Shop:
    merchant_id: str
    name: str
    secret: str
    owner: Person

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


async def open_shop(client: httpx.AsyncClient, owner: Person, name: str = "Corner Cafe") -> Shop:
    """A business profile of `owner`'s, and a key of it."""
    body = {"name": name, "mcc": "5814", "city": "Oakland", "country": "US"}
    made = await client.post("/api/v1/merchants", json=body, headers=owner.auth)
    assert made.status_code == 201, made.text
    merchant_id = made.json()["merchant_id"]
    key = await client.post(f"/api/v1/merchants/{merchant_id}/api-keys", headers=owner.auth)
    assert key.status_code == 201, key.text
    return Shop(merchant_id, name, key.json()["secret"], owner)


async def pay(
    app: FastAPI,
    client: httpx.AsyncClient,
    payer: Person,
    shop: Shop,
    amount: str,
    note: str | None = None,
) -> str:
    """A completed payment of `payer`'s to the shop; its id.

    Until POST /api/v1/payments lands: the ledger transfer and row the payment path makes."""
    pool, ledger = app.state.pool, app.state.ledger
    merchant = await get_merchant(pool, shop.merchant_id)
    fee_account = await open_system_account(pool, "fee_revenue", "USD", overdraft=False)
    payer_id = uuid.UUID(payer.user_id)
    wallet = await pool.fetchval("SELECT account_id FROM wallets WHERE user_id = $1", payer_id)
    whole, _, cents = amount.partition(".")
    minor = int(whole) * 100 + int((cents + "00")[:2])
    fee = (minor * 190 + 5000) // 10000 + 10
    payment_id = uuid.uuid4()
    from billfold.ledger.model import Leg

    transfer = await ledger.transfer(
        f"user:{payer_id}",
        str(payment_id),
        [
            Leg(wallet, -minor, "USD"),
            Leg(merchant.account_id, minor - fee, "USD"),
            Leg(fee_account.id, fee, "USD"),
        ],
        code="merchant_payment",
        metadata={
            "payment_id": str(payment_id),
            "merchant_id": str(merchant.id),
            "merchant_name": merchant.name,
            "payer_id": str(payer_id),
            **({"note": note} if note else {}),
        },
    )
    await pool.execute(
        """INSERT INTO merchant_payments (id, merchant_id, payer_id, transfer_id, amount_minor,
               fee_minor, currency, status, note, idempotency_key)
           VALUES ($1, $2, $3, $4, $5, $6, 'USD', 'COMPLETED', $7, $8)""",
        payment_id,
        merchant.id,
        payer_id,
        transfer.id,
        minor,
        fee,
        note,
        str(payment_id),
    )
    return str(payment_id)
