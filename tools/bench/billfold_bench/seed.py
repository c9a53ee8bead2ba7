"""Money for the benchmarks' accounts, moved through the ledger like any other."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg

from billfold.config import Settings
from billfold.ledger.engine import Ledger
from billfold.ledger.model import Leg
from billfold.platform.db import create_pool, dsn_for_database
from billfold.platform.migrate import apply_migrations

# Credits per funding transfer: one debit of the clearing account, then this many credits.
FUNDING_LEGS = 60


async def fund_all(
    pool: asyncpg.Pool, settings: Settings, source_id: int, account_ids: list[int], amount: int
) -> None:
    """Credit each account with `amount` from `source_id`, in N-leg transfers run together."""
    ledger = Ledger(pool, settings)
    await ledger.start()
    chunks = [account_ids[i : i + FUNDING_LEGS] for i in range(0, len(account_ids), FUNDING_LEGS)]

    async def fund(n: int, chunk: list[int]) -> None:
        legs = [Leg(source_id, -amount * len(chunk), "USD")]
        legs += [Leg(a, amount, "USD") for a in chunk]
        await ledger.transfer("bench", f"fund-{n}", legs, code="add_funds")

    try:
        await asyncio.gather(*(fund(n, c) for n, c in enumerate(chunks)))
    finally:
        await ledger.stop()


@contextlib.asynccontextmanager
async def scratch_database(dsn: str) -> AsyncIterator[str]:
    """A fresh, empty database beside `dsn`'s for one benchmark run, dropped afterwards."""
    name = f"billfold_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield dsn_for_database(dsn, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def migrated_pool(database_url: str, settings: Settings) -> asyncpg.Pool:
    """A pool on a scratch database with every migration applied; closed again if they fail."""
    pool = await create_pool(database_url, settings)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn)
    except BaseException:
        await pool.close()
        raise
    return pool
