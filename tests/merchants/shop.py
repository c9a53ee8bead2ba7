"""A merchant as the API tests make one: a person's business profile, an API key of it, and the
requests its server and its customers send (open a checkout session, pay, look up)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from billfold.merchants import qr
from tests.api.driver import Person, money_headers

PROFILE = {"name": "Corner Bakery", "mcc": "5462", "city": "Oakland", "country": "US"}


@dataclass
class Shop:
    merchant_id: str
    owner: Person
    key: str  # the API key's secret
    profile: dict[str, str]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def static_qr(self) -> str:
        """The merchant's static code: the payer types the amount."""
        p = self.profile
        payload = qr.Payload(
            uuid.UUID(self.merchant_id), p["mcc"], "USD", p["country"], p["name"], p["city"]
        )
        return qr.encode(payload)


async def open_shop(client: httpx.AsyncClient, owner: Person, **profile: str) -> Shop:
    """A business profile of `owner`'s and an API key of it."""
    body = {**PROFILE, **profile}
    made = await client.post("/api/v1/merchants", json=body, headers=owner.auth)
    assert made.status_code == 201, made.text
    merchant_id = made.json()["merchant_id"]
    key = await client.post(f"/api/v1/merchants/{merchant_id}/api-keys", headers=owner.auth)
    assert key.status_code == 201, key.text
    return Shop(merchant_id, owner, key.json()["secret"], body)


async def open_session(
    client: httpx.AsyncClient,
    shop: Shop,
    amount: Any = "12.50",
    key: str | None = None,
    **more: Any,
) -> httpx.Response:
    """POST /checkout/sessions with the shop's key."""
    headers = {**shop.auth, "Idempotency-Key": key or uuid.uuid4().hex}
    return await client.post(
        "/api/v1/checkout/sessions", json={"amount": amount, **more}, headers=headers
    )


async def session(client: httpx.AsyncClient, shop: Shop, amount: Any = "12.50") -> dict[str, Any]:
    """`open_session`, which must answer 201; its body."""
    made = await open_session(client, shop, amount)
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


async def pay(
    client: httpx.AsyncClient,
    payer: Person,
    key: str | None = None,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> httpx.Response:
    """POST /payments as `payer`, from their home device in the US unless `headers` say
    otherwise; `body`: qr_payload=, session_id=, amount=, note=."""
    where = {"X-Device-Id": payer.device(), "X-Client-Country": "US", **(headers or {})}
    return await client.post(
        "/api/v1/payments", json=body, headers=money_headers(payer, key, where)
    )


async def merchant_balance(app: FastAPI, shop: Shop) -> int:
    """The merchant account's posted balance, in cents."""
    found = await app.state.pool.fetchval(
        """SELECT a.posted_minor FROM accounts a JOIN merchants m ON m.account_id = a.id
            WHERE m.id = $1""",
        uuid.UUID(shop.merchant_id),
    )
    return int(found)


async def fee_revenue(app: FastAPI) -> int:
    """The fee revenue account's posted balance, in cents."""
    found = await app.state.pool.fetchval(
        "SELECT posted_minor FROM accounts WHERE id = $1", app.state.merchants.fee_revenue
    )
    return int(found)


async def wallet_minor(app: FastAPI, person: Person) -> int:
    """The person's wallet's posted balance, in cents."""
    found = await app.state.pool.fetchval(
        """SELECT a.posted_minor FROM accounts a JOIN wallets w ON w.account_id = a.id
            WHERE w.user_id = $1""",
        uuid.UUID(person.user_id),
    )
    return int(found)


async def told(app: FastAPI, **data: str) -> list[tuple[str, dict[str, Any]]]:
    """(kind, data) of the outbox's events whose data has these values, oldest first."""
    (name, value), *_ = data.items()
    rows = await app.state.pool.fetch(
        "SELECT type, data FROM outbox WHERE data->>$1 = $2 ORDER BY id", name, value
    )
    found = []
    for row in rows:
        if all(row["data"].get(k) == v for k, v in data.items()):
            kind = row["type"].removeprefix("billfold.").rsplit(".v", 1)[0]
            found.append((kind, dict(row["data"])))
    return found
