"""What `billfold events tail|replay` run on: the broker the settings name, and the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime

import orjson

from billfold.config import Settings
from billfold.events.brokers import connect
from billfold.events.figures import DayFigures, day_figures, kind_of
from billfold.events.outbox import amount
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


async def figures_of(settings: Settings, day: date) -> DayFigures:
    """The figures the `figures` group keeps, of a day (UTC)."""
    dsn = await asyncio.to_thread(ensure_database, settings)
    pool = await create_pool(dsn, settings)
    try:
        return await day_figures(pool, day)
    finally:
        await pool.close()


def figures_lines(figures: DayFigures) -> list[str]:
    """`billfold events figures` as it prints them: a table by type and currency, then the P2P
    rates by currency."""
    lines = [f"Events of {figures.day.isoformat()} (UTC)"]
    lines.append(f"{'type':<28} {'currency':<8} {'count':>10} {'volume':>18}")
    for f in figures.by_type:
        volume = amount(f.volume_minor, f.currency) if f.currency else ""
        lines.append(f"{kind_of(f.type):<28} {f.currency or '-':<8} {f.count:>10} {volume:>18}")
    if not figures.by_type:
        lines.append("(none)")
    lines.append("")
    lines.append(
        f"{'P2P transfers':<16} {'decided':>10} {'held':>8} {'declined':>8} "
        f"{'hold rate':>10} {'decline rate':>13}"
    )
    for r in figures.rates:
        lines.append(
            f"{r.currency:<16} {r.decisions:>10} {r.held:>8} {r.declined:>8} "
            f"{_percent(r.hold_rate):>10} {_percent(r.decline_rate):>13}"
        )
    if not figures.rates:
        lines.append("(none)")
    return lines


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"
