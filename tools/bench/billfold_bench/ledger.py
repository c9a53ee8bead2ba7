"""`billfold bench ledger`: transfers per second and latency of the engine, batched and not.

The benchmark makes a fresh database beside the configured one (dropped afterwards), opens
`accounts` funded wallets, and runs four scenarios for `seconds` each with `submitters`
concurrent callers, each awaiting one transfer at a time:

- uniform: random transfers among all the wallets, through the group-commit engine;
- hot: every transfer credits one hot account, through the group-commit engine;
- uniform-single and hot-single: the same through the engine with batching off (a batch of one,
  one transaction per transfer, on as many connections), the plain path for comparison;
- uniform-positions (only when asked for): uniform, each batch's WAL position remembered in
  Redis for its accounts after the commit, as a node with a replica does (platform.replica).

The engine's checks are all on: idempotency keys and outcomes, limits, entries, running balances,
the deferred balance check. After the runs the ledger is reconciled.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from billfold.config import Settings
from billfold.ledger.accounts import open_account, open_clearing_account
from billfold.ledger.engine import Ledger
from billfold.ledger.errors import LedgerError
from billfold.ledger.model import AccountKind
from billfold.ledger.reconcile import reconcile
from billfold.platform.redis import create_redis
from billfold.platform.replica import Reads
from billfold_bench.seed import fund_all, migrated_pool, scratch_database

FUNDING_MINOR = 1_000_000_00
PICKS = 1024


@dataclass
class Result:
    scenario: str
    submitters: int
    transfers: int
    failed: int
    seconds: float
    transfers_per_s: float
    latency_ms_p50: float
    latency_ms_p99: float
    batches: int

    def line(self) -> str:
        return (
            f"{self.scenario:<15} {self.transfers_per_s:>9,.0f}/s"
            f"  p50 {self.latency_ms_p50:6.1f} ms"
            f"  p99 {self.latency_ms_p99:6.1f} ms  ({self.transfers:,} transfers, "
            f"{self.failed} refused, {self.batches:,} transactions, {self.submitters} submitters)"
        )


async def run_ledger_bench(
    settings: Settings,
    dsn: str,
    *,
    accounts: int,
    submitters: int,
    seconds: float,
    scenarios: list[str],
    say: Any = None,
    redis_url: str | None = None,
) -> dict[str, Any]:
    say = say or (lambda text: print(text, file=sys.stderr, flush=True))
    async with scratch_database(dsn) as database_url:
        bench_settings = settings.model_copy(update={"db_pool_max": 24, "db_pool_min": 4})
        pool = await migrated_pool(database_url, bench_settings)
        try:
            wallets, hot = await _open_accounts(pool, bench_settings, accounts, say)
            results = []
            for scenario in scenarios:
                result = await _scenario(
                    pool, bench_settings, scenario, wallets, hot, submitters, seconds, redis_url
                )
                say(result.line())
                results.append(result)
            say("reconciling ...")
            report = await reconcile(pool)
            say(report.render().splitlines()[0] + (": ok" if report.ok else ": DISCREPANCIES"))
        finally:
            await pool.close()
    by_name = {r.scenario: r for r in results}
    ratios = {
        f"{base}_vs_single": round(
            by_name[base].transfers_per_s / by_name[f"{base}-single"].transfers_per_s, 2
        )
        for base in ("uniform", "hot")
        if base in by_name and f"{base}-single" in by_name
    }
    ratios.update(
        {
            f"{base}_outbox_vs_none": round(
                by_name[base].transfers_per_s / by_name[f"{base}-no-outbox"].transfers_per_s, 2
            )
            for base in ("uniform", "hot")
            if base in by_name and f"{base}-no-outbox" in by_name
        }
    )
    if "uniform" in by_name and "uniform-positions" in by_name:
        ratios["uniform_positions_vs_none"] = round(
            by_name["uniform-positions"].transfers_per_s / by_name["uniform"].transfers_per_s, 2
        )
    for key, value in ratios.items():
        say(f"{key}: {value}x")
    return {
        "accounts": accounts,
        "submitters": submitters,
        "seconds": seconds,
        "results": [asdict(r) for r in results],
        "ratios": ratios,
        "reconciled": report.ok,
        "reconcile_seconds": round(report.seconds, 2),
    }


async def _open_accounts(
    pool: asyncpg.Pool, settings: Settings, count: int, say: Any
) -> tuple[list[int], int]:
    say(f"opening and funding {count:,} wallets ...")
    bank = await open_clearing_account(pool, "USD", name="bench:bank")
    hot = await open_account(
        pool, kind=AccountKind.MERCHANT, owner="bench", currency="USD", name="bench:hot"
    )
    async with pool.acquire() as conn:
        ids = await conn.fetchval(
            """
            WITH opened AS (
                INSERT INTO accounts (kind, owner, currency)
                SELECT 'wallet', 'bench:' || g, 'USD' FROM generate_series(1, $1) g
                RETURNING id
            ) SELECT array_agg(id ORDER BY id) FROM opened
            """,
            count,
        )
    await fund_all(pool, settings, bank.id, list(ids), FUNDING_MINOR)
    return list(ids), hot.id


async def _scenario(
    pool: asyncpg.Pool,
    settings: Settings,
    scenario: str,
    wallets: list[int],
    hot: int,
    submitters: int,
    seconds: float,
    redis_url: str | None = None,
) -> Result:
    single = scenario.endswith("-single")
    to_hot = scenario.startswith("hot")
    if scenario.endswith("-no-outbox"):
        settings = settings.model_copy(update={"outbox": False})
    if single:
        settings = settings.model_copy(update={"batch_window_ms": 0.0, "batch_concurrency": 20})
    ledger = Ledger(pool, settings, batch_max=1 if single else None)
    redis = None
    if scenario.endswith("-positions") and redis_url is not None:
        # Positions are remembered only with a replica; the primary stands in for one here,
        # as nothing is read.
        redis = await create_redis(redis_url)
        ledger.after_commit_position = Reads(pool, pool, redis).remember
    await ledger.start()
    latencies: list[float] = []
    failed = 0
    run_id = uuid.uuid4().hex[:8]
    stop_at = time.perf_counter() + seconds

    async def submitter(n: int) -> None:
        nonlocal failed
        # Random choices made up front, so that the load generator, which shares the engine's
        # process and cores, spends as little as it can per transfer.
        rng = random.Random(n)
        debits = rng.choices(wallets, k=PICKS)
        credits = [hot] * PICKS if to_hot else rng.choices(wallets, k=PICKS)
        amounts = [rng.randint(1, 10_000) for _ in range(PICKS)]
        i = 0
        while time.perf_counter() < stop_at:
            i += 1
            debit, credit = debits[i % PICKS], credits[i % PICKS]
            if credit == debit:
                continue
            started = time.perf_counter()
            try:
                await ledger.move(
                    "bench",
                    f"{run_id}-{n}-{i}",
                    debit_account_id=debit,
                    credit_account_id=credit,
                    amount_minor=amounts[i % PICKS],
                    currency="USD",
                    code="p2p",
                )
            except LedgerError:
                failed += 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(submitter(n) for n in range(submitters)))
    elapsed = time.perf_counter() - started
    await ledger.stop()
    if redis is not None:
        await redis.aclose()
    latencies.sort()
    return Result(
        scenario=scenario,
        submitters=submitters,
        transfers=len(latencies),
        failed=failed,
        seconds=round(elapsed, 2),
        transfers_per_s=round(len(latencies) / elapsed, 1),
        latency_ms_p50=round(statistics.median(latencies) * 1000, 2),
        latency_ms_p99=round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        batches=ledger.batches,
    )
