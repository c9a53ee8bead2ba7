"""`billfold bench transfer-cost`: the CPU a P2P transfer costs, app and servers apart.

`bench api` measures what the whole machine delivers over HTTP, which on a shared machine
varies by a tenth from one run to the next. This measures the cost instead, and holds steady:
the app (`create_app`, with its lifespan: ledger, risk engine, caches) is called in this process
directly as ASGI, `concurrency` requests at once, by people signed up as `bench api` signs them
up. After a warm-up, it reads the CPU time of this process (the app: everything but HTTP
parsing) and of the PostgreSQL and Redis processes on this machine (from /proc, so only when
they run here; other work of theirs counts too), each divided by the transfers made.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import time
from typing import Any

import asyncpg

from billfold.app import create_app
from billfold.config import Settings
from billfold.ledger.reconcile import reconcile
from billfold_bench import say
from billfold_bench.api import ADDRESS, seed_people
from billfold_bench.cpu import backends_cpu, per_unit_us, servers_cpu
from billfold_bench.rules import LOAD_TEST_RULES
from billfold_bench.seed import migrated_pool, scratch_database
from billfold_bench.server import bench_redis
from billfold_bench.traffic import AppTokens, app_tokens, transfer_request


async def run_transfer_cost(
    settings: Settings,
    dsn: str,
    redis_url: str,
    *,
    users: int,
    transfers: int,
    concurrency: int,
    scoring: bool,
) -> dict[str, Any]:
    async with scratch_database(dsn) as database_url:
        pool = await migrated_pool(database_url, settings)
        try:
            people = await seed_people(pool, settings, users)
            configured = settings.model_copy(
                update={
                    "database_url": database_url,
                    # Its own Redis database, as bench api's: the scratch ledger's account
                    # ids are the real one's too, and their cached balances must not mix.
                    "redis_url": bench_redis(redis_url),
                    "secret_key": secrets.token_urlsafe(48),
                    "login_limit_per_address": 0,
                    "money_limit_per_user": 0,
                    "money_limit_per_address": 0,
                    "risk_engine": "rules" if scoring else "off",
                    "risk_rules": LOAD_TEST_RULES,
                    # Every transfer scored whole: one cut off by the budget would cost less.
                    "risk_budget_ms": 10_000.0,
                }
            )
            app = create_app(configured)
            tokens = app_tokens(people, configured.secret_key or "", 3600)
            async with app.router.lifespan_context(app):
                send = _sender(app, people, tokens)
                say(f"warming up with {transfers // 2:,} transfers ...")
                await _drive(send, transfers // 2, concurrency)
                backends = await _backends(pool)
                before = _cpu_seconds(backends)
                started = time.perf_counter()
                failed = await _drive(send, transfers, concurrency)
                elapsed = time.perf_counter() - started
                after = _cpu_seconds(backends)
            report = await reconcile(pool)
        finally:
            await pool.close()
    per_transfer = per_unit_us(before, after, transfers)
    result = {
        "benchmark": "transfer-cost",
        "scoring": scoring,
        "transfers": transfers,
        "concurrency": concurrency,
        "failed": failed,
        "transfers_per_s_in_process": round(transfers / elapsed),
        "cpu_us_per_transfer": per_transfer,
        "reconciled": report.ok,
    }
    say(
        f"{transfers:,} transfers ({'scoring on' if scoring else 'scoring off'}): CPU per "
        + ", ".join(f"{k} {v} us" for k, v in per_transfer.items())
        + f"; {failed} failed; ledger {'reconciled' if report.ok else 'DISCREPANCIES'}"
    )
    return result


def _sender(app: Any, people: list[str], tokens: AppTokens) -> Any:
    rng = random.Random(1)

    async def send() -> bool:
        headers, body = transfer_request(rng, people, tokens)
        raw_headers = [(b"host", b"bench"), (b"content-length", str(len(body)).encode())]
        raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/v1/transfers",
            "raw_path": b"/api/v1/transfers",
            "root_path": "",
            "query_string": b"",
            "headers": raw_headers,
            "client": (ADDRESS, 50_000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        status = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def respond(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, respond)
        return status == 201

    return send


async def _drive(send: Any, count: int, concurrency: int) -> int:
    """`count` transfers, `concurrency` at a time; returns how many failed."""
    remaining = iter(range(count))
    failed = 0

    async def worker() -> None:
        nonlocal failed
        for _ in remaining:
            if not await send():
                failed += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failed


async def _backends(pool: asyncpg.Pool) -> list[int]:
    """The PostgreSQL backends of the scratch database (the app's pools, opened by now)."""
    rows = await pool.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    return [row["pid"] for row in rows]


def _cpu_seconds(backends: list[int]) -> dict[str, float | None]:
    """CPU seconds (user and system) of this process, of each server's processes here, and of
    the scratch database's backends (`postgresql` counts others' work on a shared server)."""
    times = os.times()
    return {
        "app": times.user + times.system,
        **servers_cpu(),
        "postgresql_backends": backends_cpu(backends),
    }
