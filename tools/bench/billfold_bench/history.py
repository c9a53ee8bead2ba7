"""`billfold bench history`: history pages for a user with 100,000 transactions in a big ledger.

The ledger is generated in SQL, as in `bench reconcile`: transfers over a year between
`accounts` wallets, each with a user, and one user (the "hero") in `hero_entries` of them. Then
the benchmark reads pages of the hero's history the way the API does (`wallet.history`), with
a type filter and a random 30-day window, and reports p50/p99. Then it starts `billfold serve`
on that ledger (workers included, as a user runs it) and reads the same kinds of page over HTTP,
as the hero's app would: one keep-alive connection, one page after another, with the hero's
bearer token, so the figures include authentication, validation and the JSON response.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import asyncpg
import orjson

from billfold.config import Settings
from billfold.ledger.reconcile import reconcile
from billfold.platform.db import create_pool
from billfold.platform.migrate import apply_migrations
from billfold.platform.security import issue_token
from billfold.wallet.history import HistoryQuery, read_history
from billfold.wallet.users import get_user
from billfold_bench import monthly, say
from billfold_bench.http import Connection
from billfold_bench.seed import scratch_database
from billfold_bench.server import running_server

YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
WARM_UP = 20  # pages read over HTTP before the timed ones
GENERATE = [
    """
    WITH people AS (
        INSERT INTO users (username, email, phone, password_hash)
        SELECT 'hist_' || g, 'hist_' || g || '@example.com', '+1' || lpad(g::text, 10, '0'), 'x'
          FROM generate_series(1, $1) g
        RETURNING id
    ), opened AS (
        INSERT INTO accounts (kind, owner, currency, overdraft_limit_minor)
        SELECT 'system', 'user:' || id, 'USD', 1000000000000000 FROM people
        RETURNING id, owner
    )
    INSERT INTO wallets (user_id, currency, account_id)
    SELECT substr(owner, 6)::uuid, 'USD', id FROM opened
    """,
    # Transfer g happens at a time that grows with g, over one year (`monthly`); every
    # (T / H)-th one involves account 1, the hero, alternately paying and being paid ($3: the
    # accounts, $4: T / H).
    """
    SELECT t.id AS transfer_id, t.created_at,
           CASE WHEN t.id % $4 = 0 AND (t.id / $4) % 2 = 0 THEN 1
                ELSE 2 + (t.id * 7919) % ($3 - 1) END AS account_id,
           -t.amount_minor AS amount_minor
      FROM month t
    UNION ALL
    SELECT t.id, t.created_at,
           CASE WHEN t.id % $4 = 0 AND (t.id / $4) % 2 = 1 THEN 1
                ELSE 2 + (t.id * 7919 + 1 + t.id % ($3 - 2)) % ($3 - 1) END,
           t.amount_minor
      FROM month t
    """,
]


async def run_history_bench(
    settings: Settings,
    dsn: str,
    redis_url: str,
    *,
    entries: int,
    accounts: int,
    hero_entries: int,
    queries: int,
    workers: int,
    http: bool = True,
) -> dict[str, Any]:
    started = time.perf_counter()
    async with generated_ledger(settings, dsn, entries, accounts, hero_entries) as (
        database_url,
        pool,
        hero_id,
    ):
        # From an empty database to a vacuumed ledger.
        generated = round(time.perf_counter() - started)
        # The whole ledger reconciled first (`bench reconcile`'s check, here on this ledger).
        say("reconciling ...")
        report = await reconcile(pool)
        say(report.render())
        hero = await get_user(pool, hero_id)
        results = {
            "first_page": await _time(pool, hero, queries, lambda _r: HistoryQuery()),
            "type_and_30_days": await _time(pool, hero, queries, _type_and_window),
            # A text search scans the user's whole history (see docs/benchmarks.md): fewer.
            "q_text_search": await _time(
                pool,
                hero,
                max(10, queries // 10),
                lambda r: HistoryQuery(text=f"note {r.randrange(1000)}"),
            ),
        }
        if http:
            results |= await _over_http(database_url, redis_url, hero_id, queries, workers)
    for label, figures in results.items():
        say(
            f"{label:<22} p50 {figures['latency_ms_p50']} ms  p99 {figures['latency_ms_p99']} ms"
            f"  ({figures['rows_per_page']} rows a page)"
        )
    return {
        "benchmark": "history",
        "entries": report.entries,
        "hero_entries": hero_entries,
        "results": results,
        "reconciled": report.ok,
        "reconcile_seconds": round(report.seconds, 1),
        "generate_seconds": generated,
    }


@contextlib.asynccontextmanager
async def generated_ledger(
    settings: Settings, dsn: str, entries: int, accounts: int, hero_entries: int
) -> AsyncIterator[tuple[str, asyncpg.Pool, uuid.UUID]]:
    """A scratch database holding the generated ledger (GENERATE): its URL, a pool on it (closed
    on the way out) and the hero's user id."""
    async with scratch_database(dsn) as database_url:
        sized = settings.model_copy(update={"statement_timeout_ms": 0})
        pool = await create_pool(database_url, sized)
        try:
            async with pool.acquire() as conn:
                await apply_migrations(conn)
                await _generate(conn, entries, accounts, hero_entries)
            hero_id = await pool.fetchval("SELECT user_id FROM wallets WHERE account_id = 1")
            yield database_url, pool, hero_id
        finally:
            await pool.close()


async def _generate(conn: asyncpg.Connection, entries: int, accounts: int, hero: int) -> None:
    transfers = entries // 2
    say(f"generating {entries:,} entries over {accounts:,} wallets, {hero:,} of them the hero's")
    started = time.perf_counter()
    await conn.execute(GENERATE[0], accounts)
    await monthly.generate(
        conn,
        transfers=transfers,
        start=YEAR_START,
        code="(ARRAY['p2p', 'p2p', 'add_funds', 'cash_out'])[1 + g % 4]",
        metadata="jsonb_build_object('note', 'note ' || g % 1000)",
        legs=GENERATE[1],
        legs_args=(accounts, max(1, transfers // hero)),
    )
    written = time.perf_counter() - started
    for table in ("accounts", "transfers", "entries", "users", "wallets"):
        await conn.execute(f"VACUUM ANALYZE {table}")
    say(
        f"generated in {written:.0f}s, vacuumed in {time.perf_counter() - started - written:.0f}s;"
        " reading history ..."
    )


def _type_and_window(rng: random.Random) -> HistoryQuery:
    start = YEAR_START + timedelta(days=rng.randrange(330))
    return HistoryQuery(types=("p2p",), start=start, end=start + timedelta(days=30))


def _type_and_window_params(rng: random.Random) -> dict[str, str]:
    """`_type_and_window` as the app asks for it: `from` and `to` are days, `to` inclusive."""
    start = YEAR_START.date() + timedelta(days=rng.randrange(330))
    end = start + timedelta(days=29)
    return {"type": "p2p", "from": start.isoformat(), "to": end.isoformat()}


async def _over_http(
    database_url: str, redis_url: str, hero_id: Any, queries: int, workers: int
) -> dict[str, Any]:
    """The first page and the filtered page over HTTP, from a server started on the ledger."""
    key = secrets.token_urlsafe(48)
    async with running_server(database_url, redis_url, key, workers) as (port, _server):
        say(f"server up with {workers} workers; reading history over HTTP ...")
        headers = {"Authorization": f"Bearer {issue_token(hero_id, key, 3600)}"}
        path = f"/api/v1/wallet/{hero_id}/transactions"
        connection = Connection("127.0.0.1", port)
        try:
            return {
                "http_first_page": await _time_http(
                    connection, path, headers, queries, lambda _r: {}
                ),
                "http_type_and_30_days": await _time_http(
                    connection, path, headers, queries, _type_and_window_params
                ),
            }
        finally:
            await connection.close()


async def _time_http(
    connection: Connection,
    path: str,
    headers: dict[str, str],
    count: int,
    make: Callable[[random.Random], dict[str, str]],
) -> dict[str, Any]:
    """Pages read one after another; the first `WARM_UP` (the server's first requests fill
    its caches of tokens and users, as a running server's are) are not counted."""
    rng = random.Random(7)
    latencies, rows = [], []
    for n in range(WARM_UP + count):
        params = make(rng)
        target = f"{path}?{urlencode(params)}" if params else path
        started = time.perf_counter()
        status, body = await connection.request("GET", target, headers)
        elapsed = time.perf_counter() - started
        if status != 200:
            raise RuntimeError(f"GET {target} answered {status}: {body[:200]!r}")
        if n >= WARM_UP:
            latencies.append(elapsed)
            rows.append(len(orjson.loads(body)["transactions"]))
    return _figures(latencies, rows)


async def _time(pool: asyncpg.Pool, hero: Any, count: int, make: Any) -> dict[str, Any]:
    rng = random.Random(7)
    latencies, rows = [], []
    for _ in range(count):
        query = make(rng)
        started = time.perf_counter()
        page = await read_history(pool, hero, query)
        latencies.append(time.perf_counter() - started)
        rows.append(len(page["transactions"]))
    return _figures(latencies, rows)


def _figures(latencies: list[float], rows: list[int]) -> dict[str, Any]:
    latencies.sort()
    return {
        "latency_ms_p50": round(statistics.median(latencies) * 1000, 2),
        "latency_ms_p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "rows_per_page": round(statistics.mean(rows), 1),
    }
