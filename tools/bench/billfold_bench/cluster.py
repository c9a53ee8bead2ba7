"""`billfold bench cluster`: the local cluster (deploy/local-cluster) driven over HTTP through
HAProxy, with 1, 2 and 3 API nodes in HAProxy's backend (the others disabled through its runtime
API), and what a transfer costs each tier in CPU (API nodes, the PostgreSQL primary and replica,
Redis, NATS, HAProxy, the load generator), read from /proc (bench.cpu).

The cluster is started unless it already runs in the directory given (and then left running);
people are signed up and funded on its primary; each phase is `seconds` of P2P transfers by
`clients` keep-alive connections, after a warm-up, `runs` times; the figures are the medians. On
a machine of few cores the nodes, the database and the generator share them: the CPU per
transfer of each tier, not the throughput, is what carries to a larger machine (docs/capacity.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg

from billfold.config import Settings
from billfold.ledger.reconcile import reconcile
from billfold.platform.db import create_pool
from billfold_bench import say
from billfold_bench.api import drive_http, seed_people
from billfold_bench.cpu import processes_cpu
from billfold_bench.seed import migrated_pool
from billfold_bench.traffic import app_tokens

SCRIPT = Path("deploy/local-cluster")
TIERS = ("api", "postgresql", "replica", "redis", "nats", "haproxy", "generator")


def local_cluster(directory: Path, base_port: int, *command: str) -> None:
    """Runs deploy/local-cluster (from the checkout this is run in) with the load test's node
    settings (bench.server's: no rate limits, risk rules a load cannot trip, quiet logs)."""
    env = {**os.environ, **LOAD_SETTINGS}
    args = [str(SCRIPT), *command, "--dir", str(directory), "--base-port", str(base_port)]
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603


def _load_settings() -> dict[str, str]:
    from billfold_bench.rules import LOAD_TEST_RULES

    return {
        "BILLFOLD_LOGIN_LIMIT_PER_ADDRESS": "0",
        "BILLFOLD_MONEY_LIMIT_PER_USER": "0",
        "BILLFOLD_MONEY_LIMIT_PER_ADDRESS": "0",
        "BILLFOLD_LOG_LEVEL": "WARNING",
        "BILLFOLD_RISK_RULES": LOAD_TEST_RULES.model_dump_json(exclude_defaults=True),
    }


LOAD_SETTINGS = _load_settings()


def haproxy(state: dict[str, Any], command: str) -> str:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(state["haproxy_socket"])
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def use_nodes(state: dict[str, Any], count: int) -> None:
    """The first `count` nodes in HAProxy's backend, the others out of it."""
    for n in range(len(state["nodes"])):
        verb = "enable" if n < count else "disable"
        haproxy(state, f"{verb} server nodes/node{n + 1}")


def tiers_cpu(state: dict[str, Any]) -> dict[str, float | None]:
    """CPU seconds so far of each tier's processes (each with its children)."""
    pids = state["pids"]

    def trees(group: list[int]) -> float | None:
        seconds = [processes_cpu(tree=pid) for pid in group if pid]
        found = [s for s in seconds if s is not None]
        return sum(found) if found else None

    return {
        "api": trees(pids["nodes"]),
        "postgresql": trees([pids["primary"]]),
        "replica": trees([pids["replica"]]),
        "redis": trees([pids["redis"]]),
        "nats": trees(pids["nats"]),
        "haproxy": trees([pids["haproxy"]]),
        "generator": time.process_time(),
    }


IDLE_S = 5.0


async def idle_cpu(state: dict[str, Any], seconds: float) -> dict[str, float | None]:
    """Each tier's CPU milliseconds a second with no load (the generator's excepted)."""
    before = tiers_cpu(state)
    await asyncio.sleep(seconds)
    after = tiers_cpu(state)
    return {
        tier: None
        if tier == "generator" or before[tier] is None or after[tier] is None
        else round((after[tier] - before[tier]) / seconds * 1000, 1)  # type: ignore[operator]
        for tier in TIERS
    }


def per_transfer(
    before: dict[str, float | None],
    after: dict[str, float | None],
    made: int,
    less: dict[str, float] | None = None,
) -> dict[str, int | None]:
    """Microseconds of CPU a transfer for each tier, less `less` seconds of it if given."""
    figures: dict[str, int | None] = {}
    for tier in TIERS:
        start, end = before[tier], after[tier]
        if start is None or end is None or not made:
            figures[tier] = None
            continue
        spent = end - start - (less or {}).get(tier, 0.0)
        figures[tier] = round(spent / made * 1e6)
    return figures


async def run_cluster_bench(
    settings: Settings,
    *,
    directory: Path,
    base_port: int,
    users: int,
    clients: int,
    seconds: float,
    warmup: float,
    runs: int,
) -> dict[str, Any]:
    state_file = directory / "cluster.json"
    started = not (state_file.exists() and _running(json.loads(state_file.read_text())))
    if started:
        say(f"starting the local cluster in {directory} ...")
        local_cluster(directory, base_port, "up")
    state = json.loads(state_file.read_text())
    try:
        return await measure(settings, state, users, clients, seconds, warmup, runs)
    finally:
        if started:
            local_cluster(directory, base_port, "down")


def _running(state: dict[str, Any]) -> bool:
    return all(_alive(pid) for pid in [*state["pids"]["nodes"], state["pids"]["haproxy"]])


def _alive(pid: int | None) -> bool:
    return bool(pid) and Path(f"/proc/{pid}").exists()


async def measure(
    settings: Settings,
    state: dict[str, Any],
    users: int,
    clients: int,
    seconds: float,
    warmup: float,
    runs: int,
    idle_s: float = IDLE_S,
) -> dict[str, Any]:
    cluster_settings = settings.model_copy(
        update={"database_url": state["database_url"], "redis_url": state["redis_url"]}
    )
    pool = await migrated_pool(state["database_url"], cluster_settings)
    try:
        people = await earlier_people(pool, users) or await seed_people(
            pool, cluster_settings, users
        )
    finally:
        await pool.close()
    key = (await asyncio.to_thread(Path(state["secret_key_file"]).read_text)).strip()
    tokens = app_tokens(people, key, 3600 * 4)
    port = int(state["api"].rpartition(":")[2])
    idle = await idle_cpu(state, idle_s)
    say("idle, CPU ms a second: " + "  ".join(f"{t} {v}" for t, v in idle.items()))
    results: dict[str, Any] = {}
    for count in range(1, len(state["nodes"]) + 1):
        use_nodes(state, count)
        if warmup > 0:
            await drive_http(port, people, tokens, clients, seconds=warmup, rate=None)
        phases = []
        for _ in range(runs):
            before, started = tiers_cpu(state), time.perf_counter()
            phase = await drive_http(port, people, tokens, clients, seconds=seconds, rate=None)
            after, elapsed = tiers_cpu(state), time.perf_counter() - started
            made = phase["statuses"].get("201", 0)
            phase["cpu_us_per_transfer"] = per_transfer(before, after, made)
            # Less what the tier spends at rest (relays, consumers, health checks) meanwhile.
            phase["cpu_us_per_transfer_over_idle"] = per_transfer(
                before, after, made, {t: (idle[t] or 0) / 1000 * elapsed for t in TIERS}
            )
            phases.append(phase)
        results[str(count)] = _median(phases)
        say(_line(count, results[str(count)]))
    use_nodes(state, len(state["nodes"]))
    pool = await create_pool(state["database_url"], cluster_settings)
    try:
        report = await reconcile(pool)
    finally:
        await pool.close()
    say(report.render().splitlines()[0] + (": ok" if report.ok else ": DISCREPANCIES"))
    return {
        "benchmark": "cluster",
        "users": users,
        "clients": clients,
        "seconds": seconds,
        "runs": runs,
        "cores": os.cpu_count(),
        "idle_cpu_ms_per_s": idle,
        "nodes": results,
        "reconciled": report.ok,
    }


async def earlier_people(pool: asyncpg.Pool, count: int) -> list[str]:
    """The ids of bench_1 .. bench_<count> if an earlier run on this cluster signed them up
    (seed_people's names), else none."""
    rows = await pool.fetch(
        "SELECT id FROM users WHERE username = ANY($1::text[]) ORDER BY substr(username, 7)::int",
        [f"bench_{n}" for n in range(1, count + 1)],
    )
    return [str(r["id"]) for r in rows] if len(rows) == count else []


def _median(phases: list[dict[str, Any]]) -> dict[str, Any]:
    def median_of(values: list[Any]) -> Any:
        known = [v for v in values if v is not None]
        return statistics.median(known) if known else None

    return {
        "transfers_per_s": median_of([p["transfers_per_s"] for p in phases]),
        "transfers_per_s_runs": [p["transfers_per_s"] for p in phases],
        "latency_ms_p50": median_of([p["latency_ms_p50"] for p in phases]),
        "latency_ms_p99": median_of([p["latency_ms_p99"] for p in phases]),
        "errors": sum(p["errors"] for p in phases),
        "cpu_us_per_transfer": {
            tier: median_of([p["cpu_us_per_transfer"][tier] for p in phases]) for tier in TIERS
        },
        "cpu_us_per_transfer_over_idle": {
            tier: median_of([p["cpu_us_per_transfer_over_idle"][tier] for p in phases])
            for tier in TIERS
        },
    }


def _line(count: int, figures: dict[str, Any]) -> str:
    cpu = "  ".join(f"{t} {v}" for t, v in figures["cpu_us_per_transfer"].items())
    over = "  ".join(f"{t} {v}" for t, v in figures["cpu_us_per_transfer_over_idle"].items())
    return (
        f"{count} node(s): {figures['transfers_per_s']:,.0f} transfers/s "
        f"(runs {figures['transfers_per_s_runs']})  p50 {figures['latency_ms_p50']} ms  "
        f"p99 {figures['latency_ms_p99']} ms  errors {figures['errors']}\n"
        f"   CPU us a transfer: {cpu}\n   over idle: {over}"
    )
