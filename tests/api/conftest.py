"""An app with its lifespan run, an HTTP client on it, and helpers to make funded users."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from billfold.app import create_app
from billfold.config import Settings
from billfold.ledger.accounts import open_clearing_account
from billfold.platform.security import device_key, sign_device
from billfold_bench.rules import LOAD_TEST_RULES

SECRET_KEY = "k" * 48  # every API test module's app signs with it
HOME = "home-phone"  # a person's sign-up device (see `device`)


@dataclass
class Person:
    user_id: str
    username: str
    email: str
    phone: str
    password: str
    token: str
    device_token: str = ""  # the sign-up device's, which the login presented

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def device(self, name: str = HOME, *, own: bool = True) -> str:
        """X-Device-Id on the device `name`: HOME is the device they signed up on (its token,
        which sign-up gave); any other name, a valid token for this person's device of that
        name (`device_id`), as a login from it would give one (the app's secret key is
        SECRET_KEY). `own=False`: the device `name` itself, which others may use too."""
        if name == HOME and self.device_token:
            return self.device_token
        device_id = self.device_id(name) if own else name
        return sign_device(device_key(SECRET_KEY), uuid.UUID(self.user_id), device_id)

    def device_id(self, name: str) -> str:
        """The id of this person's device `name`: one of their own, as a real device's random
        id is, so that people's "new-phone"s are not one phone many accounts share."""
        return f"{name}-{self.user_id[:8]}"

    @property
    def home_device_id(self) -> str:
        """The device id inside the sign-up device's token."""
        return self.device_token.split(".")[2]


MakePerson = Callable[..., Awaitable[Person]]
_phone_counter = iter(range(1_000_000))


@contextlib.asynccontextmanager
async def running_app(settings: Settings, **overrides: Any) -> AsyncIterator[FastAPI]:
    """An app with its lifespan run, as every API test module starts one: the sandbox bank
    partner and card processor on (as on the embedded stack by default), SECRET_KEY, a
    generous scoring budget (a shared test machine must not turn a slow assessment into a
    pass), and no rate limits (every test logs in from one address; test_limits.py tests
    them); then `overrides`."""
    unlimited = dict.fromkeys(
        ["login_limit_per_address", "money_limit_per_user", "money_limit_per_address"], 0
    )
    update = {"secret_key": SECRET_KEY, "sandbox": True, "risk_budget_ms": 5000.0, **unlimited}
    app = create_app(settings.model_copy(update={**update, **overrides}))
    async with app.router.lifespan_context(app):
        yield app


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
        token = await client.post(
            "/api/v1/sandbox/cards/tokenize",
            json={"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
            headers=person.auth,
        )
        card = await client.post(
            "/api/v1/cards", json={"token": token.json()["token"]}, headers=person.auth
        )
        assert card.status_code == 201, card.text
        return str(card.json()["card_id"])

    return add


class Stalled:
    """The engine, answering only after `delay_s`: scoring that overruns its budget."""

    def __init__(self, engine: Any, delay_s: float) -> None:
        self.engine, self.delay_s = engine, delay_s

    async def assess(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(self.delay_s)
        return await self.engine.assess(*args, **kwargs)

    async def unscored(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.unscored(*args, **kwargs)


@pytest.fixture
def stalled_scoring(app: FastAPI) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """Within it, scoring answers after 0.3 s against a budget of 20 ms: every movement's
    assessment overruns."""

    @contextlib.contextmanager
    def stalled() -> Iterator[None]:
        engine, settings = app.state.risk, app.state.settings
        app.state.risk = Stalled(engine, 0.3)
        app.state.settings = settings.model_copy(update={"risk_budget_ms": 20.0})
        try:
            yield
        finally:
            app.state.risk, app.state.settings = engine, settings

    return stalled
