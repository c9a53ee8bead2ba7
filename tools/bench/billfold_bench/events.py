"""`billfold bench events`: the event stream's speed (issue 27), in three parts.

- lag: at a steady rate of ledger transfers (1,000/s), the lag from each transfer's commit to
  a consumer receiving its event, on Redis Streams and on NATS JetStream (billfold_bench.lag);
- outbox: what writing the outbox costs the ledger, as `bench ledger`'s throughput with the
  outbox against without it, in pairs of phases next to each other in one run, the order
  alternating from pair to pair (no relay runs: the relay's own cost is the third part);
- relay: how fast a relay drains a full outbox (N events) to each broker.

Every part runs `runs` times (pairs, for the outbox); the figures are medians. The lag and
relay parts share a scratch database (dropped afterwards) and publish to brokers of their own:
the benchmarks' Redis database (billfold_bench.server.bench_redis) and a JetStream stream made
for the run and deleted afterwards, on the server the service would use, so that nothing they
send reaches the service's consumer groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import asyncpg
import nats
from redis.asyncio import Redis

from billfold.config import Settings
from billfold.events.brokers import (
    STREAM,
    Broker,
    JetStream,
    Message,
    RedisStreams,
    close_within,
)
from billfold.events.relay import Relay
from billfold.ledger.accounts import open_clearing_account
from billfold.ledger.reconcile import reconcile
from billfold_bench import say
from billfold_bench.lag import measure_lag
from billfold_bench.ledger import run_ledger_bench
from billfold_bench.seed import fund_all, migrated_pool, scratch_database

BROKERS = ["redis", "nats"]
VARIANTS = ["nats-serial"]  # baselines, run only when asked for
PARTS = ["lag", "outbox", "relay"]
OUTBOX_SCENARIOS = ["uniform", "hot"]
WARM_UP = "uniform-no-outbox"
LAG_MS_P99_TARGET = 250.0
OUTBOX_RATIO_TARGET = 0.9
FUNDING_MINOR = 1_000_000_00
ADMIN_TIMEOUT_S = 10.0  # a call to delete the bench's stream, bounded

# The relay part's events: `transfer.completed` rows as the ledger writes them (events.outbox),
# spread over 10,000 accounts.
FILL = """
INSERT INTO outbox (type, source, subject, ordering_key, partition, time, data)
SELECT 'billfold.transfer.completed.v1', '/billfold', 'transfer/' || g,
       'account/' || g % 10000, outbox_partition('account/' || g % 10000, $2), now(),
       jsonb_build_object(
           'transfer_id', g::text, 'kind', 'transfer', 'code', 'p2p', 'amount', '12.34',
           'currency', 'USD', 'debit_account_id', (g % 10000)::text,
           'credit_account_id', ((g + 1) % 10000)::text)
  FROM generate_series(1, $1) g
"""


async def run_events_bench(
    settings: Settings,
    dsn: str,
    redis_url: str,
    *,
    nats_url: str,
    brokers: list[str],
    parts: list[str],
    runs: int,
    rate: int,
    seconds: float,
    warmup: float,
    accounts: int,
    relay_events: int,
    ledger_accounts: int,
    ledger_seconds: float,
    submitters: int,
) -> dict[str, Any]:
    sized = settings.model_copy(update={"db_pool_max": 24, "db_pool_min": 4})
    opener = _Brokers(redis_url, nats_url)
    result: dict[str, Any] = {"benchmark": "events", "runs": runs, "brokers": brokers}
    if "lag" in parts or "relay" in parts:
        async with scratch_database(dsn) as database_url:
            pool = await migrated_pool(database_url, sized)
            try:
                if "lag" in parts:
                    wallets = await _wallets(pool, sized, accounts)
                    result["lag"] = await _lag_runs(
                        pool, sized, opener, brokers, wallets, runs, rate, seconds, warmup
                    )
                if "relay" in parts:
                    result["relay"] = await _relay_runs(
                        pool, sized, opener, brokers, runs, relay_events
                    )
                report = await reconcile(pool)
                result["reconciled"] = report.ok
            finally:
                await pool.close()
    if "outbox" in parts:
        result["outbox"] = await _outbox_runs(
            settings, dsn, runs, ledger_accounts, submitters, ledger_seconds
        )
        result["reconciled"] = result.get("reconciled", True) and result["outbox"]["reconciled"]
    return result


class SerialJetStream(JetStream):
    """JetStream as published before decision 126, one message at a time, each awaiting its
    acknowledgement: `--broker nats-serial`, the baseline of the waves."""

    async def publish(self, messages: Sequence[Message]) -> None:
        for m in messages:
            await self._js.publish(self._prefix + m.type, m.body, headers={"Nats-Msg-Id": m.id})


class _Brokers:
    """Opens each broker for one phase, on the benchmarks' own stream, emptied before and
    deleted after."""

    def __init__(self, redis_url: str, nats_url: str) -> None:
        self.redis_url = redis_url
        self.nats_url = nats_url

    @contextlib.asynccontextmanager
    async def open(self, kind: str) -> AsyncIterator[Broker]:
        if kind == "redis":
            redis = Redis.from_url(self.redis_url, decode_responses=True)
            await redis.delete(STREAM)
            try:
                yield RedisStreams(redis)
            finally:
                await redis.delete(STREAM)
                await redis.aclose()
            return
        tag = uuid.uuid4().hex[:8]
        stream = f"BILLFOLD_BENCH_{tag}"
        kind_class = SerialJetStream if kind == "nats-serial" else JetStream
        jetstream = await kind_class.connect(
            self.nats_url, stream=stream, subject_prefix=f"bench{tag}."
        )
        try:
            yield jetstream
        finally:
            await jetstream.close()
            # Deleted once closed: deleting it under the consumer's cancelled fetch leaves the
            # client's drain waiting for its 30-s timeout.
            async with asyncio.timeout(ADMIN_TIMEOUT_S):
                admin = await nats.connect(self.nats_url, connect_timeout=2, allow_reconnect=False)
            try:
                async with asyncio.timeout(ADMIN_TIMEOUT_S):
                    await admin.jetstream().delete_stream(stream)
            finally:
                await close_within(admin.close(), "NATS")


async def _wallets(pool: asyncpg.Pool, settings: Settings, count: int) -> list[int]:
    """`count` funded wallets (their funding writes no events: the outbox starts empty)."""
    say(f"opening and funding {count:,} wallets ...")
    bank = await open_clearing_account(pool, "USD", name="bench:bank")
    ids = await pool.fetchval(
        """
        WITH opened AS (
            INSERT INTO accounts (kind, owner, currency)
            SELECT 'wallet', 'bench:' || g, 'USD' FROM generate_series(1, $1) g
            RETURNING id
        ) SELECT array_agg(id ORDER BY id) FROM opened
        """,
        count,
    )
    quiet = settings.model_copy(update={"outbox": False})
    await fund_all(pool, quiet, bank.id, list(ids), FUNDING_MINOR)
    return list(ids)


async def _lag_runs(
    pool: asyncpg.Pool,
    settings: Settings,
    opener: _Brokers,
    brokers: list[str],
    wallets: list[int],
    runs: int,
    rate: int,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    by_broker: dict[str, list[dict[str, Any]]] = {kind: [] for kind in brokers}
    for run in range(runs):
        for kind in _alternated(brokers, run):
            say(f"run {run + 1}/{runs}: lag on {kind} at {rate:,}/s ({warmup:g} s warm-up) ...")
            async with opener.open(kind) as broker:
                figures = await measure_lag(
                    pool, settings, broker, kind, wallets, rate=rate, seconds=seconds, warmup=warmup
                )
            say(f"  {kind}: {lag_line(figures)}")
            by_broker[kind].append(figures)
    return {
        "rate": rate,
        "seconds": seconds,
        "target_ms_p99": LAG_MS_P99_TARGET,
        "brokers": {kind: _lag_medians(rows) for kind, rows in by_broker.items()},
        "runs": by_broker,
    }


def lag_line(f: dict[str, Any]) -> str:
    parts = ", ".join(
        f"{name} p50 {p['p50']} / p99 {p['p99']}" for name, p in f["parts_ms"].items()
    )
    return (
        f"lag p50 {f['lag_ms_p50']} ms, p99 {f['lag_ms_p99']} ms ({f['transfers']:,} transfers, "
        f"{f['transfers_per_s']:,.0f}/s, {f['missing']} missing; {parts}; "
        f"{f['publish_size_mean']} events a publish)"
    )


def _lag_medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [
        "lag_ms_p50",
        "lag_ms_p99",
        "from_event_time_ms_p50",
        "from_event_time_ms_p99",
        "transfers_per_s",
        "publish_size_mean",
    ]
    medians: dict[str, Any] = {key: _median(r[key] for r in rows) for key in keys}
    medians["missing"] = sum(r["missing"] for r in rows)
    medians["parts_ms"] = {
        name: {q: _median(r["parts_ms"][name][q] for r in rows) for q in ("p50", "p99")}
        for name in rows[0]["parts_ms"]
    }
    medians["met"] = medians["lag_ms_p99"] <= LAG_MS_P99_TARGET and medians["missing"] == 0
    return medians


async def _relay_runs(
    pool: asyncpg.Pool,
    settings: Settings,
    opener: _Brokers,
    brokers: list[str],
    runs: int,
    events: int,
) -> dict[str, Any]:
    by_broker: dict[str, list[float]] = {kind: [] for kind in brokers}
    for run in range(runs):
        for kind in _alternated(brokers, run):
            await pool.execute("TRUNCATE outbox")
            await pool.execute(FILL, events, settings.events_partitions)
            async with opener.open(kind) as broker:
                relay = Relay(pool, broker, partitions=settings.events_partitions)
                started = time.perf_counter()
                while await relay.publish_once():
                    pass
                elapsed = time.perf_counter() - started
            if relay.published != events:
                raise RuntimeError(f"the relay published {relay.published} of {events} events")
            per_s = round(events / elapsed, 1)
            say(f"run {run + 1}/{runs}: relay drained {events:,} events to {kind}: {per_s:,.0f}/s")
            by_broker[kind].append(per_s)
    return {
        "events": events,
        "brokers": {
            kind: {"events_per_s": statistics.median(v), "runs": v} for kind, v in by_broker.items()
        },
    }


async def _outbox_runs(
    settings: Settings, dsn: str, runs: int, accounts: int, submitters: int, seconds: float
) -> dict[str, Any]:
    """`bench ledger`'s scenarios with and without the outbox, `runs` pairs of each in one
    database, the order within a pair alternating: each pair's ratio compares two phases next
    to each other in time, as alike in the machine's load as they can be. A first phase, not
    counted, warms the database up: in a fresh one throughput climbs over the first phases,
    which would count against whichever came first."""
    order = [
        scenario
        for run in range(runs)
        for name in OUTBOX_SCENARIOS
        for scenario in _alternated([name, f"{name}-no-outbox"], run)
    ]
    say(
        f"bench ledger: a warm-up phase, then {runs} pairs of {', '.join(OUTBOX_SCENARIOS)}, "
        "with and without the outbox"
    )
    outcome = await run_ledger_bench(
        settings,
        dsn,
        accounts=accounts,
        submitters=submitters,
        seconds=seconds,
        scenarios=[WARM_UP, *order],
        say=say,
    )
    outcome["results"] = outcome["results"][1:]
    scenarios: dict[str, Any] = {}
    for name in OUTBOX_SCENARIOS:
        per_s = _per_s(outcome, name)
        none_per_s = _per_s(outcome, f"{name}-no-outbox")
        ratios = [round(a / b, 3) for a, b in zip(per_s, none_per_s, strict=True)]
        scenarios[name] = {
            "with_outbox_per_s": statistics.median(per_s),
            "without_outbox_per_s": statistics.median(none_per_s),
            "ratio": statistics.median(ratios),
            "ratios": ratios,
            "met": statistics.median(ratios) >= OUTBOX_RATIO_TARGET,
        }
    return {
        "accounts": accounts,
        "submitters": submitters,
        "seconds": seconds,
        "target_ratio": OUTBOX_RATIO_TARGET,
        "scenarios": scenarios,
        "reconciled": outcome["reconciled"],
    }


def _per_s(outcome: dict[str, Any], scenario: str) -> list[float]:
    """The scenario's transfers/s in each of its phases, in order."""
    return [float(r["transfers_per_s"]) for r in outcome["results"] if r["scenario"] == scenario]


def _alternated(items: list[str], run: int) -> list[str]:
    """The items in order on even runs, reversed on odd ones: neither always goes first."""
    return list(items) if run % 2 == 0 else list(reversed(items))


def _median(values: Iterable[float]) -> float:
    return round(statistics.median(values), 1)


def table(result: dict[str, Any]) -> list[str]:
    """The figures as the command prints them."""
    lines = []
    if "lag" in result:
        lag = result["lag"]
        lines.append(
            f"commit to consumer at {lag['rate']:,} transfers/s, medians of {result['runs']} "
            f"runs of {lag['seconds']:g} s (target p99 <= {lag['target_ms_p99']:g} ms):"
        )
        lines.append(f"  {'broker':<8} {'p50':>9} {'p99':>9}  {'achieved':>9}  met")
        for kind, m in lag["brokers"].items():
            lines.append(
                f"  {kind:<8} {m['lag_ms_p50']:>6.1f} ms {m['lag_ms_p99']:>6.1f} ms"
                f"  {m['transfers_per_s']:>7,.0f}/s  {'yes' if m['met'] else 'NO'}"
            )
    if "outbox" in result:
        outbox = result["outbox"]
        lines.append(
            f"bench ledger with the outbox / without, {result['runs']} pairs in one run, medians "
            f"(target >= {outbox['target_ratio']}):"
        )
        for name, s in outbox["scenarios"].items():
            lines.append(
                f"  {name:<8} {s['with_outbox_per_s']:>9,.0f}/s /"
                f" {s['without_outbox_per_s']:>9,.0f}/s = {s['ratio']:.3f}"
                f"  {'yes' if s['met'] else 'NO'}"
            )
    if "relay" in result:
        relay = result["relay"]
        lines.append(f"relay flat out, {relay['events']:,} events, median of {result['runs']}:")
        for kind, r in relay["brokers"].items():
            lines.append(f"  {kind:<8} {r['events_per_s']:>9,.0f} events/s")
    return lines
