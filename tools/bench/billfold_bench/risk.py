"""`billfold bench risk`: what scoring a movement costs, whole and part by part.

A scratch database is filled with a generated world (risk.training.synth: users, their devices,
months of ordinary traffic and fraud) as the risk engine would have stored it, shifted to end
now. Then the real engine (risk.engine.RulesEngine, with the shipped model) scores movements of
those users, as the transfer path calls it: the query for the user's and the recipient's past, the
velocity counters in Redis, the features, the model, the rules and the verdict, and the stored
assessment. Each movement is scored one at a time, then `concurrency` at once.

The baseline, measured in the same run, is one Redis PING and one `SELECT 1`: the least any
scoring that reads Redis and PostgreSQL can cost. The parts (the past query alone, the features,
the model) are timed on the same movements to show where the time goes. Last, one recipient is
made popular (POPULAR_RECEIPTS transfers received in the last day) and the past query of
payments to them is timed: it reads a window of their day, not all of it.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from redis.asyncio import Redis

from billfold.config import Settings
from billfold.platform.redis import create_redis
from billfold.risk import serving
from billfold.risk.engine import RulesEngine
from billfold.risk.gate import Movement
from billfold.risk.history import NEW_ACCOUNT_SECONDS, address_of, ip_prefix
from billfold.risk.model import Scorer
from billfold.risk.training import synth
from billfold_bench import say
from billfold_bench.rules import LOAD_TEST_RULES
from billfold_bench.seed import migrated_pool, scratch_database
from billfold_bench.server import bench_redis


async def run_risk_bench(
    settings: Settings,
    dsn: str,
    redis_url: str,
    *,
    users: int,
    days: int,
    movements: int,
    concurrency: int,
) -> dict[str, Any]:
    async with scratch_database(dsn) as database_url:
        pool = await migrated_pool(database_url, settings)
        # The app's client, on the benchmarks' own Redis database: the velocity counters it
        # writes meet no other data.
        redis = await create_redis(bench_redis(redis_url))
        try:
            world = synth.generate(users=users, days=days, seed=11)
            say(f"seeding {len(world.users):,} users and {len(world.events):,} movements")
            started = time.perf_counter()
            ids = await _seed(pool, world)
            say(f"seeded in {time.perf_counter() - started:.1f} s")
            engine = RulesEngine(pool, redis, LOAD_TEST_RULES, Scorer.load())
            sample = _sample(world, ids, movements)
            result = await _measure(engine, pool, redis, sample, concurrency)
            await engine.log.flush()
        finally:
            await redis.aclose()
            await pool.close()
    return {
        "benchmark": "risk",
        "users": len(world.users),
        "history_movements": len(world.events),
        "movements": movements,
        "concurrency": concurrency,
        **result,
        "p99_added_vs_baseline_ms": round(
            result["assess_one_at_a_time"]["p99_ms"] - result["baseline"]["p99_ms"], 3
        ),
    }


async def _measure(
    engine: RulesEngine,
    pool: asyncpg.Pool,
    redis: Redis,
    sample: list[Movement],
    concurrency: int,
) -> dict[str, Any]:
    async def floor(_: Movement) -> None:
        await redis.ping()
        await pool.fetchval("SELECT 1")

    async def assess(movement: Movement) -> None:
        await engine.assess(movement)

    pasts: list[tuple[serving.Past, serving.Request, uuid.UUID | None]] = []

    async def past(movement: Movement) -> None:
        pasts.append(await engine.past(movement, datetime.now(UTC)))

    assert engine.scorer is not None
    scorer = engine.scorer
    results: dict[str, Any] = {}
    by_kind: dict[str, list[float]] = {}
    for name, work, width, kinds in (
        ("baseline", floor, 1, None),
        ("assess_one_at_a_time", assess, 1, by_kind),
        ("assess_concurrent", assess, concurrency, None),
        ("past_query", past, 1, None),
    ):
        results[name] = await _time(work, sample, width, kinds)
        say(_line(name, results[name]))
    # A funding movement's assessment is written at once, a P2P transfer's in a batch (or by
    # the ledger, in the service): their latencies differ by that round trip.
    results["assess_one_at_a_time_by_kind"] = {
        kind: _figures(latencies, sum(latencies)) for kind, latencies in sorted(by_kind.items())
    }
    # Payments to a popular person, then between two people who pay each other often: each
    # phase's past query against an ordinary movement's.
    for name, ratio, special in (
        ("past_query_to_popular", "popular_vs_ordinary_past_p50", _popular_recipient),
        ("past_query_between_a_pair", "pair_vs_ordinary_past_p50", _paying_pair),
    ):
        movements = await special(pool, sample)
        results[name] = await _time(past, movements, 1)
        say(_line(name, results[name]))
        results[ratio] = round(results[name]["p50_ms"] / results["past_query"]["p50_ms"], 2)
        del pasts[-len(movements) :]
    rows: list[list[float]] = []
    results["features"] = _time_sync(lambda p: rows.append(serving.features(*p)), pasts)
    say(_line("features", results["features"]))
    results["model"] = _time_sync(scorer.score, rows)
    say(_line("model", results["model"]))
    return results


# Transfers a popular person (a creator, a charity) received in the last day, before the last
# phase pays them: their past reads a window of them (serving.WINDOW), not the day's.
POPULAR_RECEIPTS = 20_000
POPULAR_PAYMENTS = 300


async def _popular_recipient(pool: asyncpg.Pool, sample: list[Movement]) -> list[Movement]:
    """Makes the recipient of the sample's first transfer popular (POPULAR_RECEIPTS transfers
    from the sample's senders in the last day); returns POPULAR_PAYMENTS payments to them."""
    popular = next(m.counterparty_id for m in sample if m.counterparty_id)
    senders = sorted({m.user_id for m in sample if m.user_id != popular})
    await pool.execute(
        """INSERT INTO risk_assessments (user_id, kind, ref, counterparty_id, amount_minor,
                                         score, action, reasons, created_at, sender_new)
           SELECT ($1::uuid[])[1 + n % cardinality($1)], 'p2p', 'popular-' || n, $2, 2500, 0,
                  'allow', '{}', now() - make_interval(secs => n * 86000.0 / $3), false
             FROM generate_series(1, $3) n""",
        [uuid.UUID(s) for s in senders],
        uuid.UUID(popular),
        POPULAR_RECEIPTS,
    )
    await pool.execute("ANALYZE risk_assessments")
    return [
        Movement("p2p", senders[n % len(senders)], popular, 2500, "USD", ref=f"to-popular-{n}")
        for n in range(POPULAR_PAYMENTS)
    ]


# Payments two people made each other, each way, over a year ending 40 days ago (rent, payroll,
# a daily coffee), before a phase times payments between them: the past query counts them up
# to serving.COUNT_CAP and finds the last one back by a backward index scan, not by sorting all.
PAIR_PAYMENTS = 5_000


async def _paying_pair(pool: asyncpg.Pool, sample: list[Movement]) -> list[Movement]:
    """Gives the sample's last transfer's sender and recipient PAIR_PAYMENTS payments to each
    other; returns POPULAR_PAYMENTS payments between them."""
    first = next(m for m in reversed(sample) if m.counterparty_id)
    payer, payee = first.user_id, str(first.counterparty_id)
    for sender, recipient in ((payer, payee), (payee, payer)):
        await pool.execute(
            """INSERT INTO risk_assessments (user_id, kind, ref, counterparty_id, amount_minor,
                                             score, action, reasons, created_at, sender_new)
               SELECT $1, 'p2p', $4 || n, $2, 1500, 0, 'allow', '{}',
                      now() - interval '390 days' + make_interval(secs => n * 350 * 86400.0 / $3),
                      false
                 FROM generate_series(1, $3) n""",
            uuid.UUID(sender),
            uuid.UUID(recipient),
            PAIR_PAYMENTS,
            f"pair-{sender[:8]}-",
        )
    await pool.execute("ANALYZE risk_assessments")
    return [
        Movement("p2p", payer, payee, 1500, "USD", ref=f"pair-{n}") for n in range(POPULAR_PAYMENTS)
    ]


def _sample(world: synth.Dataset, ids: dict[int, str], count: int) -> list[Movement]:
    """Movements like the world's last two days, by the same users, scored now."""
    end = world.events[-1].ts
    recent = [e for e in world.events if end - e.ts <= timedelta(days=2)]
    rng = random.Random(3)
    picked = [rng.choice(recent) for _ in range(count)]
    return [serving.movement_of(e, ids, f"bench-{n}") for n, e in enumerate(picked)]


_ASSESSMENT_COLUMNS = [
    "user_id",
    "kind",
    "ref",
    "counterparty_id",
    "amount_minor",
    "score",
    "action",
    "created_at",
    "device_id",
    "country",
    "ip_prefix",
    "rail",
    "new_payee",
    "sender_new",
    "reasons",
    "aml",
]
_PLACE_TABLES = {
    "user_devices": "device_id",
    "user_countries": "country",
    "user_networks": "prefix",
    "user_addresses": "address",
}


class _Places:
    """Where each user was seen, first and last, by table (devices, countries, address blocks,
    addresses)."""

    def __init__(self) -> None:
        self.spans: dict[str, dict[tuple[str, str], list[datetime]]] = {
            table: {} for table in _PLACE_TABLES
        }

    def seen(self, table: str, user_id: str, place: str, at: datetime) -> None:
        span = self.spans[table].setdefault((user_id, place), [at, at])
        span[0], span[1] = min(span[0], at), max(span[1], at)

    async def write(self, pool: asyncpg.Pool) -> None:
        for table, column in _PLACE_TABLES.items():
            await pool.copy_records_to_table(
                table,
                columns=["user_id", column, "first_seen_at", "last_seen_at"],
                records=[
                    (uuid.UUID(user), place, first, last)
                    for (user, place), (first, last) in self.spans[table].items()
                ],
            )


async def _seed(pool: asyncpg.Pool, world: synth.Dataset) -> dict[int, str]:
    """The world as the engine would have stored it, ending a minute ago: users, one assessment
    per movement (all allowed), and the devices, countries and addresses they came from."""
    shift = datetime.now(UTC) - timedelta(minutes=1) - world.events[-1].ts
    ids = {n: str(uuid.uuid4()) for n in world.users}
    await pool.copy_records_to_table(
        "users",
        columns=["id", "username", "email", "phone", "password_hash", "created_at"],
        records=[
            (
                uuid.UUID(ids[n]),
                f"risk{n:05d}",
                f"r{n}@bench.test",
                f"+1555{n:07d}",
                "x",
                profile.signup_at + shift,
            )
            for n, profile in world.users.items()
        ],
    )
    places = _Places()
    for n, profile in world.users.items():
        for device in profile.devices:
            places.seen("user_devices", ids[n], device, profile.signup_at + shift)
        places.seen("user_countries", ids[n], profile.home_country, profile.signup_at + shift)
    rows = _assessments(world, ids, shift, places)
    await pool.copy_records_to_table("risk_assessments", columns=_ASSESSMENT_COLUMNS, records=rows)
    await places.write(pool)
    await pool.execute("ANALYZE")
    return ids


def _assessments(
    world: synth.Dataset, ids: dict[int, str], shift: timedelta, places: _Places
) -> list[tuple[Any, ...]]:
    """One allowed assessment per movement, in _ASSESSMENT_COLUMNS; the places it came from
    are noted in `places`."""
    paid: set[tuple[int, int]] = set()
    rows: list[tuple[Any, ...]] = []
    for n, e in enumerate(world.events):
        at = e.ts + shift
        signup = world.users[e.user_id].signup_at
        new_payee = None
        if e.counterparty_id is not None:
            new_payee = (e.user_id, e.counterparty_id) not in paid
            paid.add((e.user_id, e.counterparty_id))
        rows.append(
            (
                uuid.UUID(ids[e.user_id]),
                e.kind,
                f"seed-{n}",
                uuid.UUID(ids[e.counterparty_id]) if e.counterparty_id is not None else None,
                e.amount_minor,
                0.0,
                "allow",
                at,
                e.device_id,
                e.country,
                ip_prefix(e.ip),
                e.rail,
                new_payee,
                (e.ts - signup).total_seconds() < NEW_ACCOUNT_SECONDS,
                [],
                [],
            )
        )
        user = ids[e.user_id]
        places.seen("user_devices", user, e.device_id, at)
        places.seen("user_countries", user, e.country, at)
        places.seen("user_networks", user, ip_prefix(e.ip), at)
        address = address_of(e.ip)
        if address is not None:
            places.seen("user_addresses", user, address, at)
    return rows


async def _time(
    work: Callable[[Movement], Awaitable[None]],
    sample: list[Movement],
    concurrency: int,
    by_kind: dict[str, list[float]] | None = None,
) -> dict[str, float]:
    """Figures of `work` over `sample`; with `by_kind`, each latency also filed under its
    movement's kind."""
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(movement: Movement) -> None:
        async with gate:
            started = time.perf_counter()
            await work(movement)
            latency = time.perf_counter() - started
            latencies.append(latency)
            if by_kind is not None:
                by_kind.setdefault(movement.kind, []).append(latency)

    started = time.perf_counter()
    await asyncio.gather(*(one(m) for m in sample))
    return _figures(latencies, time.perf_counter() - started)


def _time_sync(work: Callable[[Any], Any], items: list[Any]) -> dict[str, float]:
    latencies = []
    started = time.perf_counter()
    for item in items:
        t = time.perf_counter()
        work(item)
        latencies.append(time.perf_counter() - t)
    return _figures(latencies, time.perf_counter() - started)


def _figures(latencies: list[float], elapsed: float) -> dict[str, float]:
    latencies.sort()
    return {
        "per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
    }


def _line(name: str, figures: dict[str, float]) -> str:
    return (
        f"{name:<22} {figures['per_s']:>10,.0f}/s  p50 {figures['p50_ms']} ms"
        f"  p99 {figures['p99_ms']} ms"
    )
