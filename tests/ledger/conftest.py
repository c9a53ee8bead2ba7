"""Fixtures for the ledger: a running engine and a way to open funded accounts."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from billfold.config import Settings
from billfold.ledger.accounts import open_account
from billfold.ledger.engine import Ledger
from billfold.ledger.model import Account, AccountKind

OpenWallet = Callable[..., Awaitable[int]]
_counter = itertools.count()


@pytest.fixture(scope="session")
async def ledger(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[Ledger]:
    engine = Ledger(pool, settings)
    await engine.start()
    yield engine
    await engine.stop()


@pytest.fixture(scope="session")
async def bank(pool: asyncpg.Pool) -> Account:
    """The system clearing account that funds test wallets; it may go far below zero."""
    return await open_account(
        pool,
        kind=AccountKind.SYSTEM,
        owner="system",
        currency="USD",
        name="test:bank",
        overdraft_limit_minor=10**15,
    )


@pytest.fixture
def open_wallet(pool: asyncpg.Pool, ledger: Ledger, bank: Account) -> OpenWallet:
    """Opens a USD wallet holding `balance` minor units, funded from the bank account."""

    async def open_(balance: int = 0, kind: AccountKind = AccountKind.WALLET) -> int:
        account = await open_account(
            pool, kind=kind, owner=f"test:{next(_counter)}", currency="USD"
        )
        if balance:
            await ledger.move(
                "test",
                f"fund-{uuid.uuid4()}",
                debit_account_id=bank.id,
                credit_account_id=account.id,
                amount_minor=balance,
                currency="USD",
                code="add_funds",
            )
        return account.id

    return open_


def new_key() -> str:
    return str(uuid.uuid4())
