"""`billfold bench api`: the real server, driven over HTTP by many logged-in users.

It makes a fresh database (dropped afterwards) and signs up `users` people with one wallet each,
funded. It starts `billfold serve` with its workers as a separate process and mints each person
an access token. Then it runs five phases:
- baseline: the same connections send GET /healthz back to back. It measures what the HTTP stack
  and the load generator alone reach on this machine, in the same run;
- warm-up: transfers at full speed for `warmup` seconds, not measured, so that the measured
  phases meet what a service that has been running a while has: its workers' caches of users
  filled, its statements planned, its pools' connections open. Without it the measured phase
  pays for the cold start, and a slower configuration (scoring on) pays for longer;
- throughput: `clients` keep-alive connections send P2P transfers back to back, each with a fresh
  Idempotency-Key, for `seconds` (one refused with 503 waits the second it is asked to);
- latency: the same at a steady `rate` per second (open loop: latency counts from when a request
  was due, so a stall is not hidden). Past the server's capacity, the due requests wait in the
  `clients` connections: that phase measures the generator's backlog, not the server's;
- overload: `overload` times the throughput phase's rate, each transfer sent when due on a
  connection of its own (bench.overload), as many clients would send them: what the server
  admits (goodput, against the throughput phase in the same run) and how fast, and whether
  every refusal is clean.

It reports transfers/s, errors and p50/p99, and for each transfer phase how many transfers
went on unscored because their assessment overran its budget (the server's
billfold_risk_timeouts_total); then it stops the server and reconciles the ledger.
`in_flight_max` sets the server's BILLFOLD_REQUESTS_IN_FLIGHT_MAX (None: its default).
"""

from __future__ import annotations

import asyncio
import functools
import random
import re
import secrets
import statistics
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import asyncpg

from billfold.config import Settings
from billfold.ledger.accounts import open_clearing_account
from billfold.ledger.reconcile import reconcile
from billfold.platform.security import hash_password
from billfold.risk.history import ip_prefix
from billfold_bench import say
from billfold_bench.cpu import per_unit_us
from billfold_bench.http import Connection
from billfold_bench.seed import fund_all, migrated_pool, scratch_database
from billfold_bench.server import running_server
from billfold_bench.traffic import (
    COUNTRY,
    SLICE_S,
    AppTokens,
    Send,
    app_tokens,
    p99_ms,
    phase_cpu,
    transfer_request,
)

FUNDING_MINOR = 1_000_000_00
RETRY_AFTER_S = 1.0  # what a 503 overloaded asks a client to wait (api.admission)
SEED_USERS = """
WITH people AS (
    INSERT INTO users (username, email, phone, password_hash)
    SELECT 'bench_' || g, 'bench_' || g || '@example.com', '+1' || lpad(g::text, 10, '0'), $2
      FROM generate_series(1, $1) g
    RETURNING id
), opened AS (
    INSERT INTO accounts (kind, owner, currency)
    SELECT 'wallet', 'user:' || id, 'USD' FROM people
    RETURNING id, owner
)
INSERT INTO wallets (user_id, currency, account_id)
SELECT substr(owner, 6)::uuid, 'USD', id FROM opened
RETURNING user_id, account_id
"""


# Where the benchmark's people sign up and send from: their own phone (device-<user id>, sent
# as its device token), the country the edge reports, and the load generator's address.
ADDRESS = "127.0.0.1"
SEED_PLACES = """
WITH people AS (SELECT unnest($1::uuid[]) AS id), devices AS (
    INSERT INTO user_devices (user_id, device_id) SELECT id, 'device-' || id FROM people
), countries AS (
    INSERT INTO user_countries (user_id, country) SELECT id, $2 FROM people
)
INSERT INTO user_networks (user_id, prefix) SELECT id, $3 FROM people
"""


async def run_api_bench(
    settings: Settings,
    dsn: str,
    redis_url: str,
    *,
    users: int,
    clients: int,
    seconds: float,
    rate: int,
    workers: int,
    warmup: float = 0.0,
    overload: float = 0.0,
    in_flight_max: int | None = None,
) -> dict[str, Any]:
    from billfold_bench.overload import drive_open_loop  # (it imports this module's helpers)

    bound = {} if in_flight_max is None else {"BILLFOLD_REQUESTS_IN_FLIGHT_MAX": str(in_flight_max)}
    overloaded: dict[str, Any] = {}
    async with scratch_database(dsn) as database_url:
        pool = await migrated_pool(database_url, settings)
        try:
            people = await seed_people(pool, settings, users)
            key = secrets.token_urlsafe(48)
            running = running_server(database_url, redis_url, key, workers, bound)
            async with running as (port, server):
                tokens = app_tokens(people, key, 3600 * 4)
                say(f"server up with {workers} workers; {clients} clients")
                drive = functools.partial(
                    drive_http, port, people, tokens, clients, seconds=seconds, server=server.pid
                )
                baseline = await drive(rate=None, probe=True)
                say(_line("GET /healthz", baseline))
                if warmup > 0:
                    warm = await drive(rate=None, seconds=warmup)
                    say(_line("warm-up", warm))
                start = await risk_scrape(port)
                peak = await drive(rate=None)
                before = await risk_scrape(port)
                count_timeouts(peak, start.timeouts, before.timeouts)
                say(_line("throughput", peak))
                steady = await drive(rate=rate)
                after = await risk_scrape(port)
                count_timeouts(steady, before.timeouts, after.timeouts)
                say(_line(f"steady {rate}/s", steady))
                scoring = quantiles(before.buckets, after.buckets)
                if scoring:
                    say(f"scoring in the steady phase (server-side): {scoring}")
                if overload > 0 and peak["transfers_per_s"] > 0:
                    offered = overload * peak["transfers_per_s"]
                    overloaded = await drive_open_loop(
                        port, people, tokens, offered, seconds, server=server.pid
                    )
                    end = await risk_scrape(port)
                    count_timeouts(overloaded, after.timeouts, end.timeouts)
                    overloaded["shed_by_server"] = int(end.shed - after.shed)
                    overloaded["admitted_in_server"] = quantiles(
                        after.served, end.served, "requests"
                    )
                    overloaded["goodput_vs_throughput"] = round(
                        overloaded["transfers_per_s"] / peak["transfers_per_s"], 3
                    )
                    say(_overload_line(overloaded))
        finally:
            report = await reconcile(pool)
            await pool.close()
    say(report.render().splitlines()[0] + (": ok" if report.ok else ": DISCREPANCIES"))
    return {
        "benchmark": "api",
        "users": users,
        "clients": clients,
        "workers": workers,
        "seconds": seconds,
        "warmup_seconds": warmup,
        "healthz": baseline,
        "throughput": peak,
        "steady": steady,
        "overload": overloaded,
        "scoring_in_steady_phase": scoring,
        "throughput_vs_healthz": round(peak["transfers_per_s"] / baseline["transfers_per_s"], 3),
        "reconciled": report.ok,
    }


class RiskScrape(NamedTuple):
    """From the server's metrics (all workers'), for one kind of movement (P2P transfers
    unless asked otherwise)."""

    buckets: dict[float, float]  # billfold_risk_assessment_seconds: upper bound -> cumulative
    timeouts: float  # billfold_risk_timeouts_total: overran the budget, went on unscored
    shed: float  # billfold_requests_shed_total: refused with 503 overloaded (any route)
    # billfold_http_request_duration_seconds of POST /api/v1/transfers (or the route asked
    # for): upper bound ->
    # cumulative. The time in the server from admission to the answer (not the wait before).
    served: dict[float, float]


async def risk_scrape(port: int, kind: str = "p2p", route: str = "/api/v1/transfers") -> RiskScrape:
    """The figures of RiskScrape for movements of `kind` and requests to POST `route`."""
    connection = Connection("127.0.0.1", port)
    try:
        status, body = await connection.request("GET", "/metrics", {})
    finally:
        await connection.close()
    buckets: dict[float, float] = {}
    served: dict[float, float] = {}
    timeouts = shed = 0.0
    prefix = f'billfold_risk_assessment_seconds_bucket{{kind="{kind}",le="'
    for line in body.decode().splitlines() if status == 200 else ():
        if line.startswith(prefix):
            bound, _, count = line[len(prefix) :].partition('"} ')
            buckets[float(bound)] = float(count)
        elif line.startswith(f'billfold_risk_timeouts_total{{kind="{kind}"}} '):
            timeouts = float(line.rpartition(" ")[2])
        elif line.startswith("billfold_requests_shed_total "):
            shed = float(line.rpartition(" ")[2])
        elif line.startswith("billfold_http_request_duration_seconds_bucket{"):
            labels = dict(_LABEL.findall(line))
            if labels.get("method") == "POST" and labels.get("route") == route:
                served[float(labels["le"])] = float(line.rpartition(" ")[2])
    return RiskScrape(buckets, timeouts, shed, served)


_LABEL = re.compile(r'(\w+)="([^"]*)"')


def count_timeouts(phase: dict[str, Any], before: float, after: float) -> None:
    """Adds to a phase's figures the transfers that went on unscored, their budget overrun
    (with scoring off, only the idempotency claim is timed), between two counts of
    billfold_risk_timeouts_total, and the rate of the others. (The counter also counts
    movements refused for overrunning from the fail-closed amount up; the benchmark's
    transfers, at most $500.99, stay below it.)"""
    unscored = int(after - before)
    phase["risk_timeouts"] = unscored
    ok = phase["statuses"].get("201", 0)
    share = (ok - unscored) / ok if ok else 0.0
    phase["within_budget_per_s"] = round(phase["transfers_per_s"] * share, 1)


def quantiles(
    before: dict[float, float], after: dict[float, float], counted: str = "assessments"
) -> dict[str, Any]:
    """p50 and p99 of the assessments (or requests) between two scrapes, as the bucket bound
    they fall under (an upper bound on the true figure); empty when there were none."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts.get(float("inf"), 0.0)
    if not total:
        return {}

    def under(q: float) -> float:
        return next(bound for bound, count in counts.items() if count >= q * total)

    return {
        counted: int(total),
        "p50_ms_at_most": round(under(0.5) * 1000, 2),
        "p99_ms_at_most": round(under(0.99) * 1000, 2),
    }


async def seed_people(pool: asyncpg.Pool, settings: Settings, count: int) -> list[str]:
    """People made in one statement (one shared password hash: hashing 10,000 passwords would
    take minutes), each funded through the ledger. Each has the device, country and address
    block that signing up from the benchmark's app remembers (api.auth), so that their
    transfers come from where they are known, as most of a real service's do."""
    say(f"signing up and funding {count:,} people ...")
    rows = await pool.fetch(SEED_USERS, count, hash_password(secrets.token_hex(8)))
    await pool.execute(SEED_PLACES, [r["user_id"] for r in rows], COUNTRY, ip_prefix(ADDRESS))
    bank = await open_clearing_account(pool, "USD")
    await fund_all(pool, settings, bank.id, [r["account_id"] for r in rows], FUNDING_MINOR)
    return [str(r["user_id"]) for r in rows]


async def drive_http(
    port: int,
    people: list[str],
    tokens: AppTokens,
    clients: int,
    seconds: float,
    rate: int | None,
    probe: bool = False,
    server: int | None = None,
    send: Send | None = None,
    answered: Callable[[int, bytes], None] | None = None,
) -> dict[str, Any]:
    """`clients` connections send transfers (or, with `probe`, GET /healthz: the HTTP stack's
    own ceiling on this machine, the baseline for the transfer figures). `send` draws another
    request to send instead of a transfer (one made is a 201 too); `answered` is handed each
    one's status and body."""
    latencies: list[float] = []
    slices: dict[int, list[float]] = {}  # transfer latencies by SLICE_S of the phase
    statuses: dict[int, int] = {}
    cpu_started = phase_cpu(server)
    started = time.perf_counter()
    stop_at = started + seconds
    interval = clients / rate if rate else 0.0

    async def client(n: int) -> None:
        rng = random.Random(n)
        connection = Connection("127.0.0.1", port)
        due = started + rng.random() * interval
        while True:
            if rate:
                due += interval
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
            now = time.perf_counter()
            if now >= stop_at:
                break
            if probe:
                status, _ = await connection.request("GET", "/healthz", {})
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append(time.perf_counter() - now)
                continue
            if send is None:
                headers, body = transfer_request(rng, people, tokens)
                path = "/api/v1/transfers"
            else:
                path, headers, body = send(rng)
            status, answer = await connection.request("POST", path, headers, body)
            statuses[status] = statuses.get(status, 0) + 1
            if answered is not None:
                answered(status, answer)
            latency = time.perf_counter() - (due if rate else now)
            latencies.append(latency)
            slices.setdefault(int((now - started) // SLICE_S), []).append(latency)
            if status in (429, 503) and not rate:
                # As the app would, it waits the Retry-After the server asked for (1 s) rather
                # than ask again at once, and again.
                await asyncio.sleep(RETRY_AFTER_S)
        await connection.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    elapsed = time.perf_counter() - started
    cpu = per_unit_us(cpu_started, phase_cpu(server), len(latencies))
    done = len(latencies)
    ok = statuses.get(200 if probe else 201, 0)
    return {
        "transfers_per_s": round(ok / elapsed, 1),
        "requests": done,
        "errors": done - ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "latency_ms_p50": round(statistics.median(latencies) * 1000, 2) if done else None,
        "latency_ms_p99": p99_ms(latencies, 2) if done else None,
        # Where the slow ones were: a stall of a few seconds shows in one slice.
        "latency_ms_p99_by_slice": [p99_ms(slices[n], 1) for n in sorted(slices)],
        # What a request cost each process group on this machine, load generator included.
        "cpu_us_per_request": cpu,
    }


def _line(name: str, figures: dict[str, Any]) -> str:
    over = (
        f"  over the risk budget {figures['risk_timeouts']}" if "risk_timeouts" in figures else ""
    )
    return (
        f"{name:<14} {figures['transfers_per_s']:>9,.0f}/s  p50 {figures['latency_ms_p50']} ms"
        f"  p99 {figures['latency_ms_p99']} ms  errors {figures['errors']}"
        f"  statuses {figures['statuses']}{over}"
        f"\n{'':<14} CPU us a request: {figures['cpu_us_per_request']}"
    )


def _overload_line(figures: dict[str, Any]) -> str:
    return (
        f"{'overload':<14} {figures['offered_per_s']:>9,.0f}/s offered, "
        f"{figures['transfers_per_s']:,.0f}/s admitted ({figures['goodput_vs_throughput']} of "
        f"the throughput phase)  admitted p50 {figures['admitted_latency_ms_p50']} ms"
        f"  p99 {figures['admitted_latency_ms_p99']} ms  refused {figures['refused']} "
        f"{figures['refused_codes']} (p99 {figures['refused_latency_ms_p99']} ms)"
        f"  unclean {figures['unclean']}  over the risk budget {figures['risk_timeouts']}"
        f"\n{'':<14} admitted, in the server: {figures['admitted_in_server']}"
        f"\n{'':<14} CPU us a request: {figures['cpu_us_per_request']}"
    )
