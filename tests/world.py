"""The app's parts, running, for the tests of a context: its lifespan run (the pool, the ledger,
funding with the sandbox partner and card processor, the risk engine), and people made and
moved through the contexts' own functions, with no HTTP in between.

`World` is what a context test drives: each method calls one context function the way the API
handler does, so that a test of funding or risk states its rule where the rule lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from billfold.app import create_app
from billfold.config import Settings
from billfold.funding import actions, bank_accounts, cards, sandbox, webhooks
from billfold.funding.service import FundingTransfer
from billfold.ledger.accounts import open_clearing_account
from billfold.platform.errors import BillfoldError
from billfold.risk.gate import Gate, Origin
from billfold.risk.places import remember_places
from billfold.wallet import p2p, pins
from billfold.wallet.transfers import wallet_view
from billfold.wallet.users import User, check_sign_up, do_create_user, get_user

SECRET_KEY = "k" * 48  # every test app signs with it
ROUTING = "011000015"
PASSWORD = "correct horse battery"  # every person's  # a valid ABA checksum
NOWHERE = Origin(None, None, None)
BILLFOLD = str(Path(sys.executable).with_name("billfold"))
_phones = itertools.count(7_000_000)  # a request that says nothing of where it comes from


@contextlib.asynccontextmanager
async def running_app(settings: Settings, **overrides: Any) -> AsyncIterator[FastAPI]:
    """An app with its lifespan run, as every API test module starts one: the sandbox bank
    partner and card processor on (as on the embedded stack by default), SECRET_KEY, a
    generous scoring budget (a shared test machine must not turn a slow assessment into a
    pass), and no rate limits (every test logs in from one address; test_limits.py tests
    them), and no daily payouts of their own (tests/merchants/test_payouts.py runs them); then
    `overrides`."""
    unlimited = dict.fromkeys(
        ["login_limit_per_address", "money_limit_per_user", "money_limit_per_address"], 0
    )
    update = {"secret_key": SECRET_KEY, "sandbox": True, "risk_budget_ms": 5000.0, **unlimited}
    update |= {"payouts_scheduler": False}
    app = create_app(settings.model_copy(update={**update, **overrides}))
    async with app.router.lifespan_context(app):
        yield app


class Stalled:
    """The engine, answering only after `delay_s`: scoring that overruns its budget."""

    def __init__(self, engine: Any, delay_s: float) -> None:
        self.engine, self.delay_s = engine, delay_s

    async def assess(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(self.delay_s)
        return await self.engine.assess(*args, **kwargs)

    async def unscored(self, *args: Any, **kwargs: Any) -> Any:
        return await self.engine.unscored(*args, **kwargs)


def billfold(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The `billfold` command run as the shell runs it, on these settings' servers."""
    env = {
        **os.environ,
        "DATABASE_URL": str(settings.database_url),
        "REDIS_URL": str(settings.redis_url),
        "BILLFOLD_DATA_DIR": str(settings.data_dir),
    }
    return subprocess.run(
        [BILLFOLD, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@contextlib.contextmanager
def stalled_scoring(state: Any) -> Iterator[None]:
    """Within it, scoring answers after 0.3 s against a budget of 20 ms: every movement's
    assessment overruns (`state`: a running app's)."""
    engine, settings = state.risk, state.settings
    state.risk = Stalled(engine, 0.3)
    state.settings = settings.model_copy(update={"risk_budget_ms": 20.0})
    try:
        yield
    finally:
        state.risk, state.settings = engine, settings


@dataclass
class World:
    """A running app's state, driven through the contexts' functions."""

    app: FastAPI

    @property
    def state(self) -> Any:
        return self.app.state

    def gate(self) -> Gate:
        """The risk gate as the API builds it for a request (api.signals.risk_gate)."""
        s = self.state
        return Gate(s.risk, s.redis, s.settings.risk_budget_ms, s.fail_closed_minor, s.risk_slots)

    async def person(self, balance_minor: int = 0) -> User:
        """A new user with a wallet, holding `balance_minor` from the bank clearing account."""
        tag = uuid.uuid4().hex[:10]
        phone = f"+1415{next(_phones)}"  # away from the API tests' +14155560000 on
        sign_up = check_sign_up(f"w_{tag}", f"{tag}@example.com", phone, PASSWORD)
        user = await do_create_user(self.state.pool, sign_up)
        # Signed up on their home phone, from the address the API tests' transport reports.
        home = self.origin(user)
        await remember_places(self.state.pool, str(user.id), home.device_id, None, "127.0.0.1")
        if balance_minor:
            bank = await open_clearing_account(
                self.state.pool, "USD", name="test:bank_clearing:USD"
            )
            await self.state.ledger.move(
                "test",
                str(uuid.uuid4()),
                debit_account_id=bank.id,
                credit_account_id=user.account_id,
                amount_minor=balance_minor,
                currency="USD",
                code="add_funds",
            )
        return user

    def stalled_scoring(self) -> contextlib.AbstractContextManager[None]:
        """See `stalled_scoring`."""
        return stalled_scoring(self.state)

    async def assessed(self, user: User) -> list[tuple[Any, ...]]:
        """(kind, amount_minor, declined_later) of each of the user's assessments, oldest
        first."""
        await self.state.risk.log.flush()
        rows = await self.state.pool.fetch(
            """SELECT kind, amount_minor, declined_later FROM risk_assessments
                WHERE user_id = $1 ORDER BY id""",
            user.id,
        )
        return [tuple(row) for row in rows]

    def origin(self, user: User, device: str = "home", country: str | None = None) -> Origin:
        """A request from the user's own device `device` ("home": the one they signed up on),
        in `country`."""
        return Origin(f"{device}-{str(user.id)[:8]}", country, "127.0.0.1")

    async def set_pin(self, user: User, pin: str) -> None:
        """The user's PIN set, proved with their password (wallet.pins)."""
        s = self.state
        change = await pins.check_set_pin(
            s.pool, s.redis, s.settings, user.id, pin, password=PASSWORD, current_pin=None
        )
        await pins.do_set_pin(s.pool, change)

    async def reload(self, user: User) -> User:
        """The user as stored now (frozen or not, say)."""
        return await get_user(self.state.pool, user.id)

    async def bank(
        self,
        user: User,
        number: str,
        account_type: str = "checking",
        *,
        verified: bool = True,
        holder: str = "Ada Lovelace",
    ) -> str:
        """A bank account of the user's, held by `holder`, linked and (unless `verified=False`)
        verified with its micro-deposits; its id."""
        funding = self.state.funding
        request = bank_accounts.check_link_bank_account(ROUTING, number, holder, account_type)
        linked = await bank_accounts.do_link_bank_account(funding, user.id, request)
        bank_id = str(linked["bank_account_id"])
        if not verified:
            return bank_id
        amounts = await self.state.pool.fetchval(
            "SELECT micro_amounts FROM bank_accounts WHERE id = $1", uuid.UUID(bank_id)
        )
        given: list[object] = [f"0.{a:02d}" for a in amounts]
        await bank_accounts.do_verify_bank_account(funding, user.id, bank_id, given)
        return bank_id

    async def person_with_bank(self, number: str) -> tuple[User, str]:
        """A person holding $50 with a verified savings account `number`; its id."""
        person = await self.person(50_00)
        return person, await self.bank(person, number, "savings")

    async def card(self, user: User, number: str) -> str:
        """A sandbox card `number`, tokenised and stored for the user; its id."""
        processor = self.state.cards
        token = await processor.tokenize(user.id, number, 12, 2030, "123")
        stored = await cards.add_card(
            self.state.pool, self.state.funding.keys, processor, user.id, token["token"]
        )
        return str(stored["card_id"])

    async def add_funds(
        self,
        user: User,
        amount: object,
        *,
        bank: str | None = None,
        card: str | None = None,
        key: str | None = None,
        origin: Origin = NOWHERE,
    ) -> FundingTransfer:
        """funding.actions.add_funds from the bank account `bank` or the card `card`."""
        request = actions.MovementRequest(str(user.id), amount, bank, card, key or _key())
        s = self.state
        made, _ = await actions.add_funds(s.funding, s.cards, self.gate(), user, request, origin)
        return made

    async def cash_out(
        self, user: User, amount: object, bank: str, *, key: str | None = None
    ) -> FundingTransfer:
        """funding.actions.cash_out to the bank account `bank`."""
        request = actions.MovementRequest(str(user.id), amount, bank, None, key or _key())
        made, _ = await actions.cash_out(self.state.funding, self.gate(), user, request, NOWHERE)
        return made

    async def send(
        self,
        sender: User,
        recipient: User,
        amount: object,
        *,
        key: str | None = None,
        origin: Origin = NOWHERE,
    ) -> dict[str, Any]:
        """wallet.p2p.send_money: a transfer's public form."""
        s = self.state
        payments = p2p.Payments(s.pool, s.ledger, s.users, self.gate())
        request = p2p.SendMoney(str(sender.id), recipient.username, amount, None, key or _key())
        view, _ = await p2p.send_money(payments, sender.id, request, origin)
        return view

    async def partner(
        self, user: User, event: str, ft: FundingTransfer, **data: Any
    ) -> webhooks.Delivery:
        """The sandbox partner reports `event` (ach.settled, ach.returned, card.chargeback)
        about the movement; what applying it did (its status: applied, duplicate, ...)."""
        return await sandbox.deliver_event(self.state.funding, user.id, event, str(ft.id), **data)

    async def wallet(self, user: User) -> dict[str, Any]:
        """The wallet's balances as the API shows them."""
        return await wallet_view(self.state.pool, self.state.balances, user)


async def refused(making: Awaitable[Any]) -> tuple[int, str]:
    """(status, code) of the BillfoldError `making` raises."""
    with pytest.raises(BillfoldError) as error:
        await making
    return error.value.status, error.value.code


def _key() -> str:
    return uuid.uuid4().hex
