"""Fixtures for the events: a ledger engine of the module's own, wallets, the stream read back."""

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

_counter = itertools.count()


@pytest.fixture(scope="module")
async def ledger(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[Ledger]:
    engine = Ledger(pool, settings)
    await engine.start()
    yield engine
    await engine.stop()


@pytest.fixture(scope="module")
async def bank(pool: asyncpg.Pool) -> Account:
    return await open_account(
        pool,
        kind=AccountKind.SYSTEM,
        owner="system",
        currency="USD",
        name=f"test:events-bank:{uuid.uuid4()}",
        overdraft_limit_minor=10**15,
    )


@pytest.fixture
def open_wallet(
    pool: asyncpg.Pool, ledger: Ledger, bank: Account
) -> Callable[[int], Awaitable[int]]:
    async def open_(balance: int) -> int:
        account = await open_account(
            pool, kind=AccountKind.WALLET, owner=f"events:{next(_counter)}", currency="USD"
        )
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
