"""Readiness: whether the process's dependencies answer, each check given up after a moment (a
probe must answer quickly)."""

from __future__ import annotations

import asyncio

import asyncpg
import redis.asyncio
import redis.exceptions

from billfold.platform.migrate import MigrationError, pending_migrations

CHECK_TIMEOUT_S = 2.0


async def readiness(pool: asyncpg.Pool, client: redis.asyncio.Redis) -> dict[str, str]:
    """Each check's outcome ("ok", or what failed): the database, Redis and, once the database
    answers, pending migrations."""
    checks = {"database": await check_database(pool), "redis": await check_redis(client)}
    if checks["database"] == "ok":
        checks["migrations"] = await check_migrations(pool)
    return checks


async def check_database(pool: asyncpg.Pool) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g}s"
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        return f"unreachable ({type(error).__name__})"
    return "ok"


async def check_redis(client: redis.asyncio.Redis) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await client.ping()
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g}s"
    except (OSError, redis.exceptions.RedisError) as error:
        return f"unreachable ({type(error).__name__})"
    return "ok"


async def check_migrations(pool: asyncpg.Pool) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), pool.acquire() as conn:
            pending = await pending_migrations(conn)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g}s"
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, MigrationError) as error:
        return f"cannot read migrations ({type(error).__name__})"
    if pending:
        return f"pending: {', '.join(pending)}"
    return "ok"
