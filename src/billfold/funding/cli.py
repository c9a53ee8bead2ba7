"""What `billfold ach export|import` and `billfold keys rotate` run on: pool, ledger, funding."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from billfold.config import Settings
from billfold.funding.service import Funding
from billfold.ledger.engine import Ledger
from billfold.platform.db import create_pool
from billfold.platform.embedded import ensure_database
from billfold.platform.migrate import apply_migrations

T = TypeVar("T")


@asynccontextmanager
async def funding_context(settings: Settings) -> AsyncIterator[Funding]:
    """A pool, a running ledger and the funding context, for one command."""
    dsn = await asyncio.to_thread(ensure_database, settings)
    pool = await create_pool(dsn, settings)
    try:
        if settings.migrate_on_start:
            async with pool.acquire() as conn:
                await apply_migrations(conn)
        ledger = Ledger(pool, settings)
        await ledger.start()
        try:
            yield await Funding.start(pool, ledger, settings)
        finally:
            await ledger.stop()
    finally:
        await pool.close()


def run(settings: Settings, work: Callable[[Funding], Awaitable[T]]) -> T:
    async def main() -> T:
        async with funding_context(settings) as funding:
            return await work(funding)

    return asyncio.run(main())


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
