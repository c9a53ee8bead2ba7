"""What the service stands on, reached before it serves: PostgreSQL and Redis (embedded unless
DATABASE_URL / REDIS_URL name them: platform.embedded) and the database's migrations. `billfold
serve`, `demo` and `migrate` do this first, so that a failure shows in one line before any worker
starts."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from billfold.config import Settings
from billfold.platform.db import connect
from billfold.platform.embedded import ensure_database, ensure_redis
from billfold.platform.migrate import apply_migrations, pending_migrations
from billfold.platform.redis import create_redis

T = TypeVar("T")


async def prepare(settings: Settings) -> Settings:
    """Reach (or start) PostgreSQL and Redis and migrate, so that failures show up here cleanly.

    Returns settings naming the resolved URLs. The server's workers inherit them through the
    environment and attach to servers this process keeps running for as long as it lives.
    """
    database_url = await asyncio.to_thread(ensure_database, settings)
    redis_url = await asyncio.to_thread(ensure_redis, settings)
    client = await create_redis(redis_url)
    await client.aclose()
    if settings.migrate_on_start:
        await with_connection(settings, database_url, apply_migrations)
    else:
        conn = await connect(database_url, settings)
        await conn.close()
    # The workers read the embedded servers' URLs from here, and would then take them for
    # servers of their own: what depends on the stack being embedded is decided now, for them.
    os.environ.setdefault("BILLFOLD_SANDBOX", "true" if settings.sandbox_enabled else "false")
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    return settings.model_copy(update={"database_url": database_url, "redis_url": redis_url})


async def migrate(settings: Settings) -> list[str]:
    """Apply the pending migrations; their names."""
    database_url = await asyncio.to_thread(ensure_database, settings)
    return await with_connection(settings, database_url, apply_migrations)


async def pending(settings: Settings) -> list[str]:
    """The names of the migrations not applied yet."""
    database_url = await asyncio.to_thread(ensure_database, settings)
    return await with_connection(settings, database_url, pending_migrations)


async def with_connection(
    settings: Settings, database_url: str, work: Callable[[Any], Awaitable[T]]
) -> T:
    conn = await connect(database_url, settings)
    try:
        return await work(conn)
    finally:
        await conn.close()
