"""Rate limits over HTTP: logins per address, transfers per user and per address, Redis down.

Each test runs its own app with low limits, and counts under addresses no other test uses.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from billfold.app import create_app
from billfold.config import Settings
from billfold.risk.rules import RiskRules

MakePerson = Callable[..., Awaitable[Any]]


def address() -> str:
    """A client address of this test's own, so that its rate-limit keys are its own."""
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


@asynccontextmanager
async def limited(settings: Settings, **limits: Any) -> AsyncIterator[tuple[FastAPI, Any]]:
    """An app of its own with these settings (trusting X-Forwarded-For unless told otherwise),
    its lifespan run, and a client on it whose peer address is fresh."""
    # The model scores but does not decide: these users are seconds old (see conftest.py).
    quiet = RiskRules(model_decides=False)
    app = create_app(
        settings.model_copy(
            update={
                "secret_key": "k" * 48,
                "trust_forwarded_for": True,
                "risk_rules": quiet,
                **limits,
            }
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(address(), 123))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield app, client


def login(client: httpx.AsyncClient, person: Any, forwarded_for: str) -> Any:
    # The proxy appends its own hop; the first entry is the client's.
    return client.post(
        "/api/v1/auth/token",
        data={"username": person.username, "password": person.password},
        headers={"X-Forwarded-For": f"{forwarded_for}, 10.0.0.1"},
    )


def send(client: httpx.AsyncClient, sender: Any, recipient: Any, forwarded_for: str) -> Any:
    return client.post(
        "/api/v1/transfers",
        json={"sender_id": sender.user_id, "recipient": recipient.username, "amount": "1.00"},
        headers={
            **sender.auth,
            "Idempotency-Key": str(uuid.uuid4()),
            "X-Forwarded-For": forwarded_for,
        },
    )


async def balance(client: httpx.AsyncClient, person: Any) -> str:
    response = await client.get(f"/api/v1/wallet/{person.user_id}", headers=person.auth)
    return str(response.json()["balance"])


async def test_login_over_the_limit_is_a_429_naming_it_with_retry_after(
    settings: Settings, make_person: MakePerson
) -> None:
    """Three logins per minute from one address: three pass at once, the fourth is a 429 that
    says to come back when the next one is due (60 s / 3 = 20 s)."""
    person = await make_person()
    here = address()
    async with limited(settings, login_limit_per_address=3) as (_, client):
        passed = [(await login(client, person, here)).status_code for _ in range(3)]
        refused = await login(client, person, here)

    assert passed == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert (body["code"], body["limit"], body["limit_requests"], body["period_s"]) == (
        "rate_limited",
        "login_per_address",
        3,
        60,
    )
    assert 19 <= int(refused.headers["Retry-After"]) == body["retry_after_s"] <= 20


async def test_login_limit_counts_each_forwarded_address_apart(
    settings: Settings, make_person: MakePerson
) -> None:
    """With trust_forwarded_for, the first X-Forwarded-For entry is the address counted."""
    person = await make_person()
    first, second = address(), address()
    async with limited(settings, login_limit_per_address=1) as (_, client):
        statuses = [
            (await login(client, person, first)).status_code,
            (await login(client, person, first)).status_code,
            (await login(client, person, second)).status_code,
        ]

    assert statuses == [200, 429, 200]


async def test_forwarded_for_is_ignored_unless_trusted(
    settings: Settings, make_person: MakePerson
) -> None:
    """Without trust_forwarded_for a client cannot escape the limit by naming a new address."""
    person = await make_person()
    async with limited(settings, login_limit_per_address=1, trust_forwarded_for=False) as (
        _,
        client,
    ):
        statuses = [
            (await login(client, person, address())).status_code,
            (await login(client, person, address())).status_code,
        ]

    assert statuses == [200, 429]


async def test_transfer_over_the_user_limit_is_refused_and_moves_nothing(
    settings: Settings, make_person: MakePerson
) -> None:
    """A user's third transfer on a limit of two is a 429 that leaves both balances as they were;
    another user at the same address still sends."""
    alice, bob, carol = await make_person("10.00"), await make_person(), await make_person("5.00")
    here = address()
    async with limited(settings, money_limit_per_user=2, money_limit_per_address=0) as (_, client):
        passed = [(await send(client, alice, bob, here)).status_code for _ in range(2)]
        refused = await send(client, alice, bob, here)
        balances = (await balance(client, alice), await balance(client, bob))
        other_user = await send(client, carol, bob, here)

    assert passed == [201, 201]
    assert refused.status_code == 429
    assert (refused.json()["code"], refused.json()["limit"]) == ("rate_limited", "money_per_user")
    assert int(refused.headers["Retry-After"]) >= 1
    assert balances == ("8.00", "2.00")
    assert other_user.status_code == 201


async def test_transfers_from_one_address_share_its_limit(
    settings: Settings, make_person: MakePerson
) -> None:
    """Two users behind one address share money_limit_per_address; another address does not.
    The caller is authenticated first: without a token the answer is 401, not 429."""
    alice, bob = await make_person("10.00"), await make_person("10.00")
    here = address()
    async with limited(settings, money_limit_per_user=0, money_limit_per_address=2) as (_, client):
        passed = [
            (await send(client, alice, bob, here)).status_code,
            (await send(client, bob, alice, here)).status_code,
        ]
        refused = await send(client, alice, bob, here)
        elsewhere = await send(client, alice, bob, address())
        anonymous = await client.post(
            "/api/v1/transfers", json={}, headers={"X-Forwarded-For": here}
        )

    assert passed == [201, 201]
    assert (refused.status_code, refused.json()["limit"]) == (429, "money_per_address")
    assert elsewhere.status_code == 201
    assert anonymous.status_code == 401


async def test_requests_go_through_unthrottled_while_redis_is_unreachable(
    settings: Settings, make_person: MakePerson
) -> None:
    """Redis holds no money: without it, logins and transfers past every limit still succeed."""
    alice, bob = await make_person("10.00"), await make_person()
    here = address()
    limits = dict.fromkeys(
        ["login_limit_per_address", "money_limit_per_user", "money_limit_per_address"], 1
    )
    async with limited(settings, **limits) as (app, client):
        working = app.state.redis
        app.state.redis = Redis.from_url(
            "redis://127.0.0.1:1/0", socket_connect_timeout=1, socket_timeout=1
        )
        try:
            logins = [(await login(client, alice, here)).status_code for _ in range(2)]
            sends = [(await send(client, alice, bob, here)).status_code for _ in range(2)]
        finally:
            await app.state.redis.aclose()
            app.state.redis = working
        sender_balance = await balance(client, alice)

    assert logins == [200, 200]
    assert sends == [201, 201]
    assert sender_balance == "8.00"
