"""Reconciliation passes on a sound ledger and names each kind of discrepancy in a broken one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from billfold.config import Settings
from billfold.ledger.accounts import open_account
from billfold.ledger.engine import Ledger
from billfold.ledger.model import AccountKind
from billfold.ledger.reconcile import last_run, reconcile, reconcile_and_record
from billfold.platform.db import create_pool
from billfold.platform.migrate import apply_migrations


@pytest.fixture
async def scratch_pool(
    database_factory: Callable[[], Awaitable[str]], settings: Settings
) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a database of its own, so that breaking it harms no other test."""
    scratch = await create_pool(await database_factory(), settings)
    async with scratch.acquire() as conn:
        await apply_migrations(conn)
    yield scratch
    await scratch.close()


async def _some_activity(pool: asyncpg.Pool, settings: Settings) -> tuple[int, int, int]:
    bank = await open_account(
        pool, kind=AccountKind.SYSTEM, owner="s", currency="USD", overdraft_limit_minor=10**9
    )
    a = await open_account(pool, kind=AccountKind.WALLET, owner="a", currency="USD")
    b = await open_account(pool, kind=AccountKind.WALLET, owner="b", currency="USD")
    ledger = Ledger(pool, settings)
    await ledger.start()
    await ledger.move(
        "t",
        str(uuid.uuid4()),
        debit_account_id=bank.id,
        credit_account_id=a.id,
        amount_minor=1_000,
        currency="USD",
        code="add_funds",
    )
    sent = await ledger.move(
        "t",
        str(uuid.uuid4()),
        debit_account_id=a.id,
        credit_account_id=b.id,
        amount_minor=300,
        currency="USD",
        code="p2p",
    )
    await ledger.hold(
        "t",
        str(uuid.uuid4()),
        debit_account_id=a.id,
        credit_account_id=b.id,
        amount_minor=200,
        currency="USD",
        code="p2p",
    )
    await ledger.reverse("t", str(uuid.uuid4()), sent.id, amount_minor=100)
    await ledger.stop()
    return a.id, b.id, sent.id


async def test_sound_ledger_reconciles(scratch_pool: asyncpg.Pool, settings: Settings) -> None:
    """Transfers, holds and reversals leave a ledger with no discrepancy; progress is reported."""
    await _some_activity(scratch_pool, settings)
    seen: list[tuple[str, int, int]] = []
    report = await reconcile(scratch_pool, progress=lambda *step: seen.append(step))
    assert report.problems == []
    assert (report.transfers, report.entries, report.accounts) == (4, 8, 3)
    assert report.totals == {"USD": [1_600, 1_600]}  # pending legs of the hold included
    assert seen and seen[-1][1] == seen[-1][2]


async def test_each_kind_of_corruption_is_reported(
    scratch_pool: asyncpg.Pool, settings: Settings
) -> None:
    """Balances, running balances, pending totals and unbalanced entries each show in the report."""
    a, b, sent = await _some_activity(scratch_pool, settings)
    async with scratch_pool.acquire() as conn:
        await conn.execute("ALTER TABLE entries DISABLE TRIGGER USER")
        await conn.execute("ALTER TABLE accounts DROP CONSTRAINT accounts_available_within_limit")
        await conn.execute("UPDATE accounts SET posted_minor = posted_minor + 1 WHERE id = $1", a)
        await conn.execute("UPDATE accounts SET pending_credits_minor = 0 WHERE id = $1", b)
        await conn.execute(
            "UPDATE entries SET amount_minor = amount_minor + 7, balance_after_minor = 1"
            " WHERE transfer_id = $1 AND account_id = $2",
            sent,
            b,
        )
    report = await reconcile(scratch_pool)
    text = "\n".join(report.problems)
    assert f"transfer {sent}: entries do not sum to zero" in text
    assert f"account {a}: posted balance 801, its entries sum to 800" in text
    assert f"account {b}: 2 entries break the running balance" in text
    assert f"account {b}: pending debits/credits stored 0/0, open holds sum to 0/200" in text
    assert "USD: total debits 1600 differ from total credits 1607" in text
    assert not report.ok


async def test_each_run_is_stored_and_the_last_is_read_back(
    scratch_pool: asyncpg.Pool, settings: Settings
) -> None:
    """A run's outcome is stored with its counts, totals and differences (the other contexts'
    too), and `last_run` reads the latest: balanced, then not."""
    assert await last_run(scratch_pool) is None
    _, b, _ = await _some_activity(scratch_pool, settings)
    await reconcile_and_record(scratch_pool, "cli")
    first = await last_run(scratch_pool)
    assert first is not None and first["balanced"] and first["source"] == "cli"
    assert (first["transfers"], first["entries"], first["accounts"]) == (4, 8, 3)
    assert first["totals"] == [{"currency": "USD", "debits_minor": 1_600, "credits_minor": 1_600}]
    async with scratch_pool.acquire() as conn:
        await conn.execute("UPDATE accounts SET pending_credits_minor = 0 WHERE id = $1", b)

    async def funding_check(pool: asyncpg.Pool) -> list[str]:
        return ["movement x: no ledger transfer"]

    await reconcile_and_record(scratch_pool, "console", more_checks=funding_check)
    second = await last_run(scratch_pool)
    assert second is not None and not second["balanced"] and second["source"] == "console"
    assert second["problems"] == [
        f"account {b}: pending debits/credits stored 0/0, open holds sum to 0/200",
        "movement x: no ledger transfer",
    ]
