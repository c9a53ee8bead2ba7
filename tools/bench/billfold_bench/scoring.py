"""`billfold bench scoring`: what scoring adds to a transfer's latency over HTTP.

Issue 5's target is that scoring adds at most 5 ms at p99 to a transfer. `bench api` measures
one configuration per run, and on a shared, noisy machine two runs minutes apart differ by more
than that. This command measures the difference in one run: one scratch database with `users`
people, then `rounds` rounds, each starting the real server (`billfold serve`, its workers)
twice, with scoring off (BILLFOLD_RISK_ENGINE=off: only the idempotency claim) and on (rules
and model, the load-test thresholds of `bench api`). The order alternates from round to round,
so that the machine's drift falls on both. Each server is warmed up at full speed for `warmup`
seconds (its caches filled, its statements planned), then takes transfers at each of `rates`
per second, open loop, for `seconds` each.

For each rate it reports each configuration's p50 and p99 by round, and what scoring adds: the
median over rounds of (on - off), each difference taken within one round. Then the ledger is
reconciled.
"""

from __future__ import annotations

import functools
import secrets
import statistics
from typing import Any

from billfold.config import Settings
from billfold.ledger.reconcile import reconcile
from billfold_bench import say
from billfold_bench.api import drive_http, seed_people
from billfold_bench.seed import migrated_pool, scratch_database
from billfold_bench.server import running_server
from billfold_bench.traffic import AppTokens, app_tokens

TARGET_ADDED_P99_MS = 5.0  # issue 5
MODES = {"off": {"BILLFOLD_RISK_ENGINE": "off"}, "on": {"BILLFOLD_RISK_ENGINE": "rules"}}


async def run_scoring_bench(
    settings: Settings,
    dsn: str,
    redis_url: str,
    *,
    users: int,
    clients: int,
    seconds: float,
    rates: list[int],
    rounds: int,
    workers: int,
    warmup: float,
) -> dict[str, Any]:
    # figures[rate][mode]: one entry per round
    figures: dict[int, dict[str, list[dict[str, Any]]]] = {
        rate: {mode: [] for mode in MODES} for rate in rates
    }
    scored = 0  # transfers made while scoring was on: each left an assessment
    errors = 0
    async with scratch_database(dsn) as database_url:
        pool = await migrated_pool(database_url, settings)
        try:
            people = await seed_people(pool, settings, users)
            key = secrets.token_urlsafe(48)
            tokens = app_tokens(people, key, 3600 * 4)
            for round_ in range(rounds):
                order = list(MODES) if round_ % 2 == 0 else list(reversed(MODES))
                for mode in order:
                    phases = await _one_server(
                        database_url,
                        redis_url,
                        key,
                        workers,
                        mode,
                        people,
                        tokens,
                        clients,
                        warmup=warmup,
                        seconds=seconds,
                        rates=rates,
                        label=f"round {round_ + 1}/{rounds}, scoring {mode}",
                    )
                    for rate, steady in zip(rates, phases[-len(rates) :], strict=True):
                        figures[rate][mode].append(steady)
                    errors += sum(phase["errors"] for phase in phases)
                    if mode == "on":
                        scored += sum(phase["statuses"].get("201", 0) for phase in phases)
            stored = await pool.fetchval("SELECT count(*) FROM risk_assessments")
        finally:
            report = await reconcile(pool)
            await pool.close()
    say(report.render().splitlines()[0] + (": ok" if report.ok else ": DISCREPANCIES"))
    by_rate = {str(rate): _compare(figures[rate]) for rate in rates}
    return {
        "benchmark": "scoring",
        "users": users,
        "clients": clients,
        "workers": workers,
        "rounds": rounds,
        "seconds": seconds,
        "warmup_seconds": warmup,
        "target_added_p99_ms": TARGET_ADDED_P99_MS,
        "rates": by_rate,
        "errors": errors,  # warm-ups included
        # Every transfer made with scoring on has its assessment, and none other has.
        "scored_transfers": scored,
        "assessments_stored": stored,
        "reconciled": report.ok,
    }


async def _one_server(
    database_url: str,
    redis_url: str,
    key: str,
    workers: int,
    mode: str,
    people: list[str],
    tokens: AppTokens,
    clients: int,
    *,
    warmup: float,
    seconds: float,
    rates: list[int],
    label: str,
) -> list[dict[str, Any]]:
    """A server with scoring `mode`: its warm-up (if any), then a steady phase at each rate."""
    async with running_server(database_url, redis_url, key, workers, MODES[mode]) as (
        port,
        server,
    ):
        drive = functools.partial(drive_http, port, people, tokens, clients, server=server.pid)
        phases = [await drive(seconds=warmup, rate=None)] if warmup > 0 else []
        say(f"{label}: warm-up {phases[0]['transfers_per_s'] if phases else 0:,.0f}/s")
        for rate in rates:
            steady = await drive(seconds=seconds, rate=rate)
            phases.append(steady)
            say(
                f"  {rate}/s: p50 {steady['latency_ms_p50']} ms, p99 "
                f"{steady['latency_ms_p99']} ms, errors {steady['errors']}"
            )
    return phases


def _compare(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """One rate's figures by configuration and round, and what scoring added in each round."""

    def column(mode: str, name: str) -> list[Any]:
        return [run[name] for run in runs[mode]]

    added = {
        q: [round(on - off, 2) for on, off in zip(column("on", q), column("off", q), strict=True)]
        for q in ("latency_ms_p50", "latency_ms_p99")
    }
    return {
        mode: {
            "p50_ms": column(mode, "latency_ms_p50"),
            "p99_ms": column(mode, "latency_ms_p99"),
            "server_cpu_us": [run["cpu_us_per_request"]["server"] for run in runs[mode]],
            "postgresql_cpu_us": [run["cpu_us_per_request"]["postgresql"] for run in runs[mode]],
        }
        for mode in runs
    } | {
        "added_p50_ms": round(statistics.median(added["latency_ms_p50"]), 2),
        "added_p99_ms": round(statistics.median(added["latency_ms_p99"]), 2),
        "added_p99_ms_by_round": added["latency_ms_p99"],
        "within_target": statistics.median(added["latency_ms_p99"]) <= TARGET_ADDED_P99_MS,
    }
