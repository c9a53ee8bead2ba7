"""What `billfold events tail|replay` run on: the broker the settings name, and the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import orjson

from billfold.config import Settings
from billfold.events.brokers import connect
from billfold.events.relay import replay
from billfold.platform.db import create_pool
from billfold.platform.embedded import ensure_database, ensure_redis


async def tail(
    settings: Settings, types: list[str], out: Callable[[str], None], limit: int | None = None
) -> None:
    """Print each event published from now on (of `types`, when given) as one JSON line, until
    interrupted or `limit` were printed. A type matches with or without its `billfold.` prefix
    and version: `transfer.completed` matches `billfold.transfer.completed.v1`."""
    redis_url = await asyncio.to_thread(ensure_redis, settings)
    broker = await connect(settings.events_url, redis_url)
    printed = 0
    try:
        async for message in broker.tail():
            if types and not any(_matches(message.type, wanted) for wanted in types):
                continue
            out(orjson.dumps(orjson.loads(message.body)).decode())
            printed += 1
            if limit is not None and printed >= limit:
                return
    finally:
        await broker.close()


async def replay_from(settings: Settings, since: datetime) -> int:
    """Mark every event kept from `since` on for the relays to publish again; how many."""
    dsn = await asyncio.to_thread(ensure_database, settings)
    pool = await create_pool(dsn, settings)
    try:
        return await replay(pool, since)
    finally:
        await pool.close()


def _matches(published: str, wanted: str) -> bool:
    bare = published.removeprefix("billfold.").rsplit(".v", 1)[0]
    return wanted in (published, bare)
