"""An app with its lifespan run, an HTTP client on it, and helpers to make funded users."""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from billfold.config import Settings
from billfold.ledger.accounts import open_clearing_account
from billfold_bench.rules import LOAD_TEST_RULES
from tests import world
from tests.api.driver import Person, store_card
from tests.world import running_app

MakePerson = Callable[..., Awaitable[Person]]
_phone_counter = iter(range(1_000_000))


RunningApp = Callable[..., contextlib.AbstractAsyncContextManager[FastAPI]]


@pytest.fixture(scope="module")
def running(settings: Settings) -> RunningApp:
    """`running_app` on this module's settings, for a module's own `app` fixture."""
    return functools.partial(running_app, settings)


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The risk engine with thresholds that these tests' bursts can't reach, as `bench api`
    does. The model scores every movement but does not decide: these tests' users are seconds
    old and do what no person does (test_risk.py tests the rules as shipped,
    test_risk_verdicts_with_model.py and test_day_one.py the model deciding)."""
    async with running_app(settings, risk_rules=LOAD_TEST_RULES) as app:
        yield app


@pytest.fixture(scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture(scope="module")
def make_person(app: FastAPI, client: httpx.AsyncClient) -> MakePerson:
    """Signs a new person up, logs them in and, if asked, puts dollars in their wallet;
    `headers` go with the sign-up and the login (an address in X-Forwarded-For, say)."""

    async def make(balance: str | None = None, headers: dict[str, str] | None = None) -> Person:
        tag = uuid.uuid4().hex[:10]
        # Away from the demo users' +1415555010x (test_risk_verdicts_with_model.py seeds them).
        phone = f"+1415{5_560_000 + next(_phone_counter):07d}"
        body = {
            "username": f"u_{tag}",
            "email": f"{tag}@example.com",
            "phone": phone,
            "password": "correct horse battery",
        }
        signed_up = await client.post("/api/v1/users", json=body, headers=headers)
        assert signed_up.status_code == 201, signed_up.text
        device_token = signed_up.json()["device_token"]
        token = await client.post(
            "/api/v1/auth/token",
            data={"username": body["username"], "password": body["password"]},
            headers={**(headers or {}), "X-Device-Id": device_token},
        )
        assert token.status_code == 200, token.text
        assert token.json()["device_token"] == device_token
        person = Person(
            signed_up.json()["user_id"],
            body["username"],
            body["email"],
            phone,
            body["password"],
            token.json()["access_token"],
            device_token,
        )
        if balance is not None:
            await fund(app, person, int(balance.replace(".", "")))
        return person

    return make


async def fund(app: FastAPI, person: Person, amount_minor: int) -> None:
    """Money in from the bank clearing account, straight through the ledger (funding over HTTP
    is a later issue)."""
    pool = app.state.pool
    bank = await open_clearing_account(pool, "USD", name="test:bank_clearing:USD")
    account_id = await pool.fetchval(
        "SELECT account_id FROM wallets WHERE user_id = $1", uuid.UUID(person.user_id)
    )
    await app.state.ledger.move(
        "test",
        str(uuid.uuid4()),
        debit_account_id=bank.id,
        credit_account_id=account_id,
        amount_minor=amount_minor,
        currency="USD",
        code="add_funds",
    )


@pytest.fixture(scope="module")
def link_bank(app: FastAPI, client: httpx.AsyncClient) -> Callable[..., Awaitable[str]]:
    """Links a bank account for a person and (unless `verified=False`) verifies it with its
    real micro-deposit amounts; gives its id."""

    async def link(
        person: Person, number: str, account_type: str = "checking", *, verified: bool = True
    ) -> str:
        made = await client.post(
            "/api/v1/bank-accounts",
            json={
                "routing_number": "011000015",
                "account_number": number,
                "account_holder_name": "Ada Lovelace",
                "account_type": account_type,
            },
            headers=person.auth,
        )
        assert made.status_code == 201, made.text
        bank_id = str(made.json()["bank_account_id"])
        if not verified:
            return bank_id
        amounts = await app.state.pool.fetchval(
            "SELECT micro_amounts FROM bank_accounts WHERE id = $1", uuid.UUID(bank_id)
        )
        verified = await client.post(
            f"/api/v1/bank-accounts/{bank_id}/verify",
            json={"amounts": [f"0.{a:02d}" for a in amounts]},
            headers=person.auth,
        )
        assert verified.status_code == 200, verified.text
        return bank_id

    return link


@pytest.fixture(scope="module")
def add_card(client: httpx.AsyncClient) -> Callable[[Person, str], Awaitable[str]]:
    """Stores a sandbox card for a person, its number tokenized first; gives its id."""

    async def add(person: Person, number: str) -> str:
        return await store_card(client, person, number)

    return add


@pytest.fixture
def stalled_scoring(app: FastAPI) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """Within it, scoring answers after 0.3 s against a budget of 20 ms: every movement's
    assessment overruns."""
    return functools.partial(world.stalled_scoring, app.state)
