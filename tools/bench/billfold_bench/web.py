"""`billfold bench web`: the web app's pages for a person with 100,000 movements.

The ledger is generated as `bench history` makes it (a year of transfers; one person, the
"hero", in `hero_entries` of them), the hero is given the admin role so that the console's
pages can be read too, and `billfold serve` is started on it. A session is opened for the hero
in the server's Redis (web.sessions, as a login would), and each page is read one after another
on one keep-alive connection with that cookie, as a browser would: the figures include the
session, the reads, the template and the HTML response. The target: p99 <= 50 ms a page.
"""

from __future__ import annotations

import random
import secrets
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from billfold.config import Settings
from billfold.wallet.history import encode_cursor
from billfold.web.sessions import SESSION_COOKIE, open_session
from billfold_bench import say
from billfold_bench.history import _type_and_window_params, generated_ledger
from billfold_bench.http import Connection
from billfold_bench.server import bench_redis, running_server

TARGET_MS_P99 = 50.0
WARM_UP = 10  # requests to each page before the timed ones

Path = Callable[[random.Random], str]


def pages(hero: dict[str, Any]) -> dict[str, Path]:
    """The pages timed, each a path (random where the page takes a query)."""
    uid, entries = hero["user_id"], hero["entries"]
    transfer_ids = hero["transfer_ids"]
    return {
        "wallet home": lambda _r: "/app",
        "history, first page": lambda _r: "/app/history",
        "history, type and 30 days": lambda r: (
            "/app/history?" + "&".join(f"{k}={v}" for k, v in _type_and_window_params(r).items())
        ),
        "history, deep page": lambda r: (
            "/app/history?cursor=" + encode_cursor(r.randrange(100, entries))
        ),
        "history, text search": lambda r: f"/app/history?q=note+{r.randrange(1000)}",
        "a transfer": lambda r: f"/app/transfers/{r.choice(transfer_ids)}",
        "send": lambda _r: "/app/send",
        "pay": lambda _r: "/app/pay",
        "notifications": lambda _r: "/app/notifications",
        "banks and cards": lambda _r: "/app/banks",
        "settings": lambda _r: "/app/settings",
        "businesses": lambda _r: "/app/merchant",
        "console, review queue": lambda _r: "/console",
        "console, assessments": lambda _r: "/console/assessments",
        "console, a person": lambda _r: f"/console/people/{uid}",
        "console, the account": lambda r: "/console/ledger?account_id=1",
        "console, a transfer": lambda r: f"/console/ledger?transfer_id={r.choice(transfer_ids)}",
        "console, charts": lambda _r: "/console/charts",
    }


async def run_web_bench(
    settings: Settings,
    dsn: str,
    redis_url: str,
    *,
    entries: int,
    accounts: int,
    hero_entries: int,
    requests: int,
    workers: int,
    runs: int,
) -> dict[str, Any]:
    async with generated_ledger(settings, dsn, entries, accounts, hero_entries) as (
        database_url,
        pool,
        hero_id,
    ):
        await pool.execute("UPDATE users SET is_admin = true WHERE id = $1", hero_id)
        ids = await pool.fetch(
            "SELECT transfer_id FROM entries WHERE account_id = 1 ORDER BY random() LIMIT 200"
        )
        hero = {
            "user_id": str(hero_id),
            "entries": hero_entries,
            "transfer_ids": [row["transfer_id"] for row in ids],
        }
        results = await _over_http(database_url, redis_url, hero, requests, workers, runs)
    for label, figures in results.items():
        mark = "met" if figures["met"] else "MISSED"
        say(
            f"{label:<28} p50 {figures['latency_ms_p50']:>6} ms  p99 "
            f"{figures['latency_ms_p99']:>6} ms  ({figures['kib']} KiB)  {mark}"
        )
    return {
        "benchmark": "web",
        "entries": entries,
        "hero_entries": hero_entries,
        "requests_per_page": requests,
        "runs": runs,
        "target_ms_p99": TARGET_MS_P99,
        "results": results,
        "met": all(f["met"] for f in results.values()),
    }


async def _over_http(
    database_url: str,
    redis_url: str,
    hero: dict[str, Any],
    requests: int,
    workers: int,
    runs: int,
) -> dict[str, Any]:
    """Every page, `runs` times over: each page's p50 and p99 are the medians of its runs'."""
    key = secrets.token_urlsafe(48)
    async with running_server(database_url, redis_url, key, workers) as (port, _server):
        redis = Redis.from_url(bench_redis(redis_url), decode_responses=True)
        try:
            session = await open_session(redis, Settings(), uuid.UUID(hero["user_id"]))
        finally:
            await redis.aclose()
        say(f"server up with {workers} workers; reading pages as the hero ...")
        headers = {"Cookie": f"{SESSION_COOKIE}={session.id}"}
        connection = Connection("127.0.0.1", port)
        by_page: dict[str, list[dict[str, Any]]] = {}
        try:
            for run in range(runs):
                say(f"run {run + 1}/{runs} ...")
                for label, path in pages(hero).items():
                    by_page.setdefault(label, []).append(
                        await _time(connection, headers, path, requests)
                    )
        finally:
            await connection.close()
    return {label: _medians(rows) for label, rows in by_page.items()}


def _medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
    p99 = statistics.median(r["latency_ms_p99"] for r in rows)
    return {
        "latency_ms_p50": round(statistics.median(r["latency_ms_p50"] for r in rows), 2),
        "latency_ms_p99": round(p99, 2),
        "p99_runs": [r["latency_ms_p99"] for r in rows],
        "kib": rows[0]["kib"],
        "met": p99 <= TARGET_MS_P99,
    }


async def _time(
    connection: Connection, headers: dict[str, str], make: Path, count: int
) -> dict[str, Any]:
    rng = random.Random(29)
    latencies, sizes = [], []
    for n in range(WARM_UP + count):
        target = make(rng)
        started = time.perf_counter()
        status, body = await connection.request("GET", target, headers)
        elapsed = time.perf_counter() - started
        if status != 200:
            raise RuntimeError(f"GET {target} answered {status}: {body[:300]!r}")
        if n >= WARM_UP:
            latencies.append(elapsed)
            sizes.append(len(body))
    latencies.sort()
    return {
        "latency_ms_p50": round(statistics.median(latencies) * 1000, 2),
        "latency_ms_p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "kib": round(statistics.mean(sizes) / 1024, 1),
    }
