"""Rate limits over HTTP: logins per address, transfers per user and per address, Redis down;
the client's address behind trusted proxies only; the login lock-out per person.

Each test runs its own app with low limits, and counts under addresses no other test uses.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from billfold.app import create_app
from billfold.config import Settings
from billfold.risk.rules import RiskRules
from billfold_bench.server import free_port, start_server, wait_ready
from tests.api.driver import send, wallet

MakePerson = Callable[..., Awaitable[Any]]


# The proxies in front of the test client's peer (which is trusted too).
PROXIES = "10.0.0.0/8"


def address() -> str:
    """A client address of this test's own, so that its rate-limit keys are its own."""
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"


@asynccontextmanager
async def limited(
    settings: Settings, *, proxies: str = PROXIES, **limits: Any
) -> AsyncIterator[tuple[FastAPI, Any]]:
    """An app of its own with these settings, its lifespan run, and a client on it whose peer
    address is fresh; the peer is a trusted proxy, as are `proxies` (unless `proxies=None`:
    nobody is)."""
    peer = address()
    # The model scores but does not decide: these users are seconds old (see conftest.py).
    quiet = RiskRules(model_decides=False)
    trusted = "" if proxies is None else f"{peer},{proxies}"
    app = create_app(
        settings.model_copy(
            update={
                "secret_key": "k" * 48,
                "trusted_proxies": trusted,
                "risk_rules": quiet,
                **limits,
            }
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(peer, 123))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield app, client


def login(
    client: httpx.AsyncClient, person: Any, forwarded_for: str, *, handle: str = "username"
) -> Any:
    # The proxy in front of the peer (10.0.0.1, trusted) appended its own hop.
    return client.post(
        "/api/v1/auth/token",
        data={"username": getattr(person, handle), "password": person.password},
        headers={"X-Forwarded-For": f"{forwarded_for}, 10.0.0.1"},
    )


def behind(address: str) -> dict[str, str]:
    """The header of a request from `address` behind the trusted proxy."""
    return {"X-Forwarded-For": address}


async def test_login_over_the_limit_is_a_429_naming_it_with_retry_after(
    settings: Settings, make_person: MakePerson
) -> None:
    """Three logins per minute from one address: three pass at once, the fourth is a 429 that
    says to come back when the next one is due (60 s / 3 = 20 s after the first)."""
    person = await make_person()
    here = address()
    async with limited(settings, login_limit_per_address=3) as (_, client):
        started = time.monotonic()
        passed = [(await login(client, person, here)).status_code for _ in range(3)]
        refused = await login(client, person, here)
        # Each login checks a password (Argon2): on a busy machine they take a while.
        elapsed_s = math.ceil(time.monotonic() - started)

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
    assert 19 - elapsed_s <= int(refused.headers["Retry-After"]) == body["retry_after_s"] <= 20


async def test_login_limit_counts_each_forwarded_address_apart(
    settings: Settings, make_person: MakePerson
) -> None:
    """From a trusted proxy, the address X-Forwarded-For names is the one counted."""
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
    """From a peer that is not a trusted proxy a client cannot escape the limit by naming a new
    address."""
    person = await make_person()
    async with limited(settings, login_limit_per_address=1, proxies=None) as (_, client):
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
        passed = [
            (await send(client, alice, bob, headers=behind(here))).status_code for _ in range(2)
        ]
        refused = await send(client, alice, bob, headers=behind(here))
        balances = (
            (await wallet(client, alice))["balance"],
            (await wallet(client, bob))["balance"],
        )
        other_user = await send(client, carol, bob, headers=behind(here))

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
            (await send(client, alice, bob, headers=behind(here))).status_code,
            (await send(client, bob, alice, headers=behind(here))).status_code,
        ]
        refused = await send(client, alice, bob, headers=behind(here))
        elsewhere = await send(client, alice, bob, headers=behind(address()))
        anonymous = await client.post("/api/v1/transfers", json={}, headers=behind(here))

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
            sends = [
                (await send(client, alice, bob, headers=behind(here))).status_code for _ in range(2)
            ]
        finally:
            await app.state.redis.aclose()
            app.state.redis = working
        sender_balance = (await wallet(client, alice))["balance"]

    assert logins == [200, 200]
    assert sends == [201, 201]
    assert sender_balance == "8.00"


async def test_the_client_is_the_right_most_address_no_trusted_proxy_added(
    settings: Settings, make_person: MakePerson
) -> None:
    """Behind trusted proxies the client is the right-most X-Forwarded-For entry that is not one
    of them: what the client wrote to the left of it does not make it someone else."""
    person = await make_person()
    real, other = address(), address()
    async with limited(settings, login_limit_per_address=1) as (_, client):
        statuses = [
            (await login(client, person, f"{address()}, {real}")).status_code,
            (await login(client, person, f"{address()}, {real}")).status_code,
            (await login(client, person, f"{real}, {other}")).status_code,
        ]

    assert statuses == [200, 429, 200]


async def test_a_server_billfold_starts_ignores_forwarded_for_from_localhost(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """`billfold serve` with no trusted proxies (the default): a client on 127.0.0.1 cannot name
    another address in X-Forwarded-For (uvicorn's own handling would trust it from there),
    neither to escape the per-address limit nor to be where the risk engine remembers it."""
    assert settings.database_url and settings.redis_url
    port = free_port()
    server = start_server(
        settings.database_url,
        settings.redis_url,
        "k" * 48,
        port,
        1,
        {
            "BILLFOLD_DATA_DIR": str(settings.data_dir),
            "BILLFOLD_LOGIN_LIMIT_PER_ADDRESS": "1",
            "BILLFOLD_RATE_LIMIT_PERIOD_S": "3600",
        },
    )
    tag = uuid.uuid4().hex[:10]
    try:
        await wait_ready(port, server)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            signed_up = await client.post(
                "/api/v1/users",
                json={
                    "username": f"u_{tag}",
                    "email": f"{tag}@example.com",
                    "phone": f"+1628556{secrets.randbelow(10**4):04d}",
                    "password": "correct horse battery",
                },
                headers={"X-Forwarded-For": "203.0.113.9"},
            )
            logins = [
                await client.post(
                    "/api/v1/auth/token",
                    data={"username": f"u_{tag}", "password": "correct horse battery"},
                    headers=behind(address()),
                )
                for _ in range(2)
            ]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert signed_up.status_code == 201, signed_up.text
    networks = await pool.fetch(
        "SELECT prefix FROM user_networks WHERE user_id = $1",
        uuid.UUID(signed_up.json()["user_id"]),
    )

    assert [n["prefix"] for n in networks] == ["127.0"]
    assert logins[1].status_code == 429, logins[1].text
    assert logins[1].json()["limit"] == "login_per_address"


def attempt(client: httpx.AsyncClient, handle: str, password: str) -> Any:
    return client.post("/api/v1/auth/token", data={"username": handle, "password": password})


async def test_wrong_passwords_on_one_handle_lock_every_handle_of_the_person(
    settings: Settings, make_person: MakePerson
) -> None:
    """Ten wrong passwords on the username: the right one is refused on the username, the email
    and the phone alike (429 login_locked), rather than 20 more guesses on the other two."""
    person = await make_person()
    async with limited(settings, login_limit_per_address=0) as (_, client):
        wrong = [
            (await attempt(client, person.username, "wrong guess")).status_code for _ in range(10)
        ]
        locked = [
            await attempt(client, getattr(person, handle), person.password)
            for handle in ("username", "email", "phone")
        ]

    assert wrong == [401] * 10
    assert [(r.status_code, r.json()["code"]) for r in locked] == [(429, "login_locked")] * 3
    assert all(1700 < int(r.headers["Retry-After"]) <= 1800 for r in locked)


async def test_wrong_passwords_at_once_get_no_more_guesses_than_the_lock_allows(
    settings: Settings, make_person: MakePerson
) -> None:
    """Twenty wrong passwords sent together on a lock of five: five are checked (401), fifteen
    are refused as locked, and the right password after them is refused too."""
    person = await make_person()
    handles = ("username", "email", "phone")
    async with limited(settings, login_limit_per_address=0, login_max_failures=5) as (_, c):
        guesses = await asyncio.gather(
            *(attempt(c, getattr(person, handles[n % 3]), f"guess {n}") for n in range(20))
        )
        right = await attempt(c, person.username, person.password)

    assert sorted(g.status_code for g in guesses) == [401] * 5 + [429] * 15
    assert (right.status_code, right.json()["code"]) == (429, "login_locked")


async def test_a_handle_that_names_nobody_locks_as_a_person_would(
    settings: Settings, make_person: MakePerson
) -> None:
    """Wrong passwords on handles nobody has still count, per handle: the lock reads as a
    person's does (nothing says whether the handle exists), and another unknown handle is not
    locked by it."""
    person = await make_person()
    ghost = f"ghost_{uuid.uuid4().hex[:10]}"
    async with limited(settings, login_limit_per_address=0, login_max_failures=3) as (_, c):
        ghost_tries = [(await attempt(c, ghost, "guess")).status_code for _ in range(3)]
        ghost_locked = await attempt(c, ghost, "guess")
        for _ in range(3):
            await attempt(c, person.email, "guess")
        person_locked = await attempt(c, person.email, "guess")
        other_ghost = await attempt(c, f"ghost_{uuid.uuid4().hex[:10]}", "guess")

    assert ghost_tries == [401] * 3
    shown = ("status", "code", "title")
    assert [ghost_locked.json()[k] for k in shown] == [person_locked.json()[k] for k in shown]
    assert ghost_locked.json()["code"] == "login_locked"
    # Each lock lasts login_lock_s from its last failure: seconds apart here, so not equal.
    waits = [r.json()["retry_after_s"] for r in (ghost_locked, person_locked)]
    assert all(1700 < wait <= 1800 for wait in waits)
    assert other_ghost.status_code == 401


async def test_unknown_handles_from_one_address_meet_the_address_limit(
    settings: Settings,
) -> None:
    """Probing many handles, one try each, is limited by the address's login limit."""
    here = address()
    async with limited(settings, login_limit_per_address=3) as (_, client):
        answers = [
            await client.post(
                "/api/v1/auth/token",
                data={"username": f"probe_{uuid.uuid4().hex[:10]}", "password": "guess"},
                headers=behind(here),
            )
            for _ in range(4)
        ]

    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert answers[3].json()["limit"] == "login_per_address"


async def test_wrong_credentials_at_once_get_no_more_pin_change_tries_than_the_lock_allows(
    settings: Settings, make_person: MakePerson
) -> None:
    """Twenty wrong current PINs sent together on a lock of five: five are checked (403),
    fifteen are refused as locked (429 pin_change_locked)."""
    person = await make_person()
    async with limited(settings, login_max_failures=5) as (_, client):
        first = await client.put(
            f"/api/v1/users/{person.user_id}/pin",
            json={"pin": "2580", "password": person.password},
            headers=person.auth,
        )
        guesses = await asyncio.gather(
            *(
                client.put(
                    f"/api/v1/users/{person.user_id}/pin",
                    json={"pin": "1111", "current_pin": f"{n:04d}"},
                    headers=person.auth,
                )
                for n in range(20)
            )
        )

    assert first.status_code == 204, first.text
    assert sorted(g.status_code for g in guesses) == [403] * 5 + [429] * 15
    assert {g.json()["code"] for g in guesses if g.status_code == 429} == {"pin_change_locked"}
