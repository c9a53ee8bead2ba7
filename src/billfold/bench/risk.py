"""`billfold bench risk`: what scoring a movement costs, part by part.

For each movement: the velocity counters (one Redis round trip that records and reads every
window), the rules and the verdict policy, and the shipped model scoring one row. The baseline
is a Redis PING in the same run: the least any Redis-backed scoring can cost. Movements are
scored one at a time and then `concurrency` at once. The model's row is filled from the counters
where a feature has an online counterpart, NaN elsewhere (the online features are not built yet):
it measures the model's cost, not its judgement.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from billfold.risk.features import FEATURE_NAMES
from billfold.risk.model import Scorer
from billfold.risk.rules import RiskRules, Signals, check_rules, decide
from billfold.risk.velocity import Counters, Observation, Velocity

# Counters that are (close to) a model feature of the same meaning.
_ONLINE = {
    "out_count_1m": "sender_count_1m",
    "out_count_1h": "sender_count_1h",
    "out_count_24h": "sender_count_24h",
    "out_sum_24h": "sender_sum_24h_minor",
    "out_count_7d": "sender_count_7d",
    "out_sum_7d": "sender_sum_7d_minor",
}


async def run_risk_bench(redis_url: str, *, movements: int, concurrency: int) -> dict[str, Any]:
    redis = Redis.from_url(redis_url, decode_responses=True)
    prefix = f"bench-risk-{uuid.uuid4().hex[:8]}"
    velocity = Velocity(redis, prefix=prefix)
    scorer = Scorer.load()
    rules = RiskRules()
    rng = random.Random(7)
    try:
        ping = await _time(lambda n: redis.ping(), movements, 1)

        async def assess(n: int) -> None:
            await _assess(velocity, scorer, rules, rng, n)

        serial = await _time(assess, movements, 1)
        parallel = await _time(assess, movements, concurrency)
        model_only = _time_sync(lambda: scorer.score([0.0] * len(FEATURE_NAMES)), movements)
    finally:
        async for key in redis.scan_iter(f"{prefix}:*", count=1000):
            await redis.delete(key)
        await redis.aclose()
    return {
        "benchmark": "risk",
        "movements": movements,
        "concurrency": concurrency,
        "redis_ping": ping,
        "assess_one_at_a_time": serial,
        "assess_concurrent": parallel,
        "model_score_alone": model_only,
        "p99_added_vs_ping_ms": round(serial["p99_ms"] - ping["p99_ms"], 3),
    }


async def _assess(
    velocity: Velocity, scorer: Scorer, rules: RiskRules, rng: random.Random, n: int
) -> None:
    now = datetime.now(UTC)
    amount = rng.randint(1_00, 500_00)
    counters = await velocity.observe(
        Observation(
            event_id=f"m{n}",
            sender_id=f"user{rng.randrange(10_000)}",
            amount_minor=amount,
            now_ms=int(now.timestamp() * 1000),
            recipient_id=f"user{rng.randrange(10_000)}",
            device_id=f"device{rng.randrange(20_000)}",
        )
    )
    signals = Signals(
        kind="p2p",
        amount_minor=amount,
        at=now,
        count_1m=counters.sender_count_1m,
        count_1h=counters.sender_count_1h,
        recipient_new_senders_24h=counters.recipient_new_senders_24h,
    )
    score = scorer.score(_row(counters, amount))
    decide(check_rules(signals, rules), score, signals, rules)


def _row(counters: Counters, amount: int) -> list[float]:
    """Counts as they are, money in dollars (the features' unit)."""
    known = {
        feature: getattr(counters, name) / (100 if name.endswith("_minor") else 1)
        for feature, name in _ONLINE.items()
    }
    known["amount_usd"] = amount / 100
    known["log_amount"] = math.log1p(amount / 100)
    return [float(known.get(name, math.nan)) for name in FEATURE_NAMES]


async def _time(work: Any, count: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with gate:
            started = time.perf_counter()
            await work(n)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    return _figures(latencies, time.perf_counter() - started)


def _time_sync(work: Any, count: int) -> dict[str, float]:
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        t = time.perf_counter()
        work()
        latencies.append(time.perf_counter() - t)
    return _figures(latencies, time.perf_counter() - started)


def _figures(latencies: list[float], elapsed: float) -> dict[str, float]:
    latencies.sort()
    return {
        "per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
    }
