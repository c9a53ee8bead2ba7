"""The `billfold bench` command group. Every command takes --json to print one JSON object."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import uvloop

from billfold.config import Settings
from billfold.platform.runtime import tune_gc

# Run as `billfold bench ...` (billfold.cli hands it the rest of the command line).
bench_app = typer.Typer(
    help="Benchmarks",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# "-no-outbox": the same load with no events written (the outbox's cost: issue 27).
LEDGER_SCENARIOS = [
    "uniform",
    "hot",
    "uniform-single",
    "hot-single",
    "uniform-no-outbox",
    "hot-no-outbox",
]
# Run only when asked for: "uniform-positions" is uniform with each batch's WAL position
# remembered in Redis for its accounts (platform.replica's read-your-writes: its write cost).
LEDGER_EXTRA_SCENARIOS = ["uniform-positions"]
# The JetStream server `bench events` uses when BILLFOLD_EVENTS_URL names none.
NATS_LOCAL = "nats://127.0.0.1:4222"
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")]


def _report(result: dict[str, Any], json: bool, *lines: str) -> None:
    """The figures as one JSON object with --json, else `lines` (progress went to stderr)."""
    if json:
        typer.echo(orjson.dumps(result).decode())
        return
    for line in lines:
        typer.echo(line)


def _on_stack(
    run: Callable[..., Coroutine[Any, Any, dict[str, Any]]], **options: Any
) -> dict[str, Any]:
    """`run(settings, dsn, redis_url, **options)` against the PostgreSQL and Redis that
    DATABASE_URL and REDIS_URL name, or the embedded ones."""
    from billfold.platform.embedded import ensure_database, ensure_redis

    settings = Settings()
    dsn = ensure_database(settings)
    redis_url = ensure_redis(settings)
    tune_gc()
    return uvloop.run(run(settings, dsn, redis_url, **options))


@bench_app.command("ledger")
def ledger(
    accounts: Annotated[int, typer.Option(help="Wallets to open and fund.")] = 100_000,
    submitters: Annotated[int, typer.Option(help="Concurrent callers, one transfer each.")] = 500,
    seconds: Annotated[float, typer.Option(help="Length of each scenario.")] = 10.0,
    runs: Annotated[int, typer.Option(help="Repeat everything; report medians.")] = 3,
    scenario: Annotated[list[str] | None, typer.Option(help="Run only these scenarios.")] = None,
    json: JsonFlag = False,
) -> None:
    """Transfers per second and p50/p99 latency of the ledger engine, batched and not."""
    from billfold.platform.embedded import ensure_database, ensure_redis
    from billfold_bench.ledger import run_ledger_bench

    settings = Settings()
    dsn = ensure_database(settings)
    tune_gc()
    chosen = scenario or LEDGER_SCENARIOS
    known = LEDGER_SCENARIOS + LEDGER_EXTRA_SCENARIOS
    for name in chosen:
        if name not in known:
            raise typer.BadParameter(f"scenario '{name}' is not one of {known}")
    redis_url = ensure_redis(settings) if "uniform-positions" in chosen else None
    outcomes = []
    for run in range(1, runs + 1):
        typer.echo(f"run {run}/{runs}", err=True)
        outcomes.append(
            uvloop.run(
                run_ledger_bench(
                    settings,
                    dsn,
                    accounts=accounts,
                    submitters=submitters,
                    seconds=seconds,
                    scenarios=chosen,
                    redis_url=redis_url,
                )
            )
        )
    summary = _medians(outcomes)
    _report(
        summary,
        json,
        f"medians of {runs} runs:",
        *(
            f"  {name:<15} {figures['transfers_per_s']:>9,.0f}/s  p50 "
            f"{figures['latency_ms_p50']:.1f} ms  p99 {figures['latency_ms_p99']:.1f} ms"
            for name, figures in summary["scenarios"].items()
        ),
        *(f"  {name}: {ratio}x" for name, ratio in summary["ratios"].items()),
    )
    if not all(o["reconciled"] for o in outcomes):
        raise typer.Exit(1)


def _medians(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    scenarios: dict[str, dict[str, float]] = {}
    for name in [r["scenario"] for r in outcomes[0]["results"]]:
        rows = [r for o in outcomes for r in o["results"] if r["scenario"] == name]
        scenarios[name] = {
            key: statistics.median(r[key] for r in rows)
            for key in ("transfers_per_s", "latency_ms_p50", "latency_ms_p99")
        }
    ratios = {
        key: statistics.median(o["ratios"][key] for o in outcomes) for key in outcomes[0]["ratios"]
    }
    return {
        "benchmark": "ledger",
        "accounts": outcomes[0]["accounts"],
        "submitters": outcomes[0]["submitters"],
        "seconds": outcomes[0]["seconds"],
        "runs": outcomes,
        "scenarios": scenarios,
        "ratios": ratios,
        "reconciled": all(o["reconciled"] for o in outcomes),
    }


@bench_app.command("reconcile")
def reconcile_bench(
    entries: Annotated[
        int, typer.Option(help="Entries to generate (two per transfer).")
    ] = 10_000_000,
    accounts: Annotated[int, typer.Option(help="Accounts the entries spread over.")] = 100_000,
    workers: Annotated[int, typer.Option(help="Connections reconciling at once.")] = 2,
    json: JsonFlag = False,
) -> None:
    """Time `billfold reconcile` over a generated ledger of N entries."""
    from billfold.platform.embedded import ensure_database
    from billfold_bench.reconcile import run_reconcile_bench

    settings = Settings()
    dsn = ensure_database(settings)
    result = uvloop.run(
        run_reconcile_bench(settings, dsn, entries=entries, accounts=accounts, workers=workers)
    )
    _report(
        result,
        json,
        f"reconciled {result['entries']:,} entries in {result['seconds']}s "
        f"({result['entries_per_s']:,} entries/s): {'ok' if result['ok'] else 'DISCREPANCIES'}",
    )
    if not result["ok"]:
        raise typer.Exit(1)


@bench_app.command("api")
def api_bench(
    users: Annotated[
        int, typer.Option(help="People signed up, each with a funded wallet.")
    ] = 10_000,
    # 128, not 64: the workers split a fixed set of keep-alive connections unevenly as they
    # accept them (38/26 of 64, seen with ss), and in a closed loop the worker with fewer runs
    # out of work while the other is saturated (docs/benchmarks.md, "bench api").
    clients: Annotated[int, typer.Option(help="Concurrent keep-alive connections.")] = 128,
    seconds: Annotated[float, typer.Option(help="Length of each phase.")] = 60.0,
    rate: Annotated[int, typer.Option(help="Transfers/s of the steady phase.")] = 2_000,
    workers: Annotated[int, typer.Option(help="Server worker processes.")] = 2,
    warmup: Annotated[
        float, typer.Option(help="Seconds of transfers before the measured phases, not measured.")
    ] = 20.0,
    overload: Annotated[
        float,
        typer.Option(
            help="The overload phase offers this many times the throughput phase's rate (0: none)."
        ),
    ] = 2.0,
    in_flight_max: Annotated[
        int | None,
        typer.Option(help="The server's BILLFOLD_REQUESTS_IN_FLIGHT_MAX (default: its own)."),
    ] = None,
    json: JsonFlag = False,
) -> None:
    """P2P transfers per second and latency over HTTP against the real server."""
    from billfold_bench.api import run_api_bench

    result = _on_stack(
        run_api_bench,
        users=users,
        clients=clients,
        seconds=seconds,
        rate=rate,
        workers=workers,
        warmup=warmup,
        overload=overload,
        in_flight_max=in_flight_max,
    )
    _report(result, json)
    if not result["reconciled"]:
        raise typer.Exit(1)


@bench_app.command("scoring")
def scoring_bench(
    rates: Annotated[
        list[int] | None, typer.Option("--rate", help="Transfers/s of a steady phase; repeat.")
    ] = None,
    rounds: Annotated[
        int, typer.Option(help="Rounds, each with scoring off and on; report medians.")
    ] = 3,
    # 60, not 20: a 20-s phase at 100/s rests its p99 on 20 transfers, and single rounds
    # differed by up to 15 ms (docs/benchmarks.md, "What scoring adds").
    seconds: Annotated[float, typer.Option(help="Length of each steady phase.")] = 60.0,
    warmup: Annotated[
        float, typer.Option(help="Seconds of transfers at full speed after each start.")
    ] = 15.0,
    users: Annotated[
        int, typer.Option(help="People signed up, each with a funded wallet.")
    ] = 10_000,
    clients: Annotated[int, typer.Option(help="Concurrent keep-alive connections.")] = 128,
    workers: Annotated[int, typer.Option(help="Server worker processes.")] = 2,
    json: JsonFlag = False,
) -> None:
    """What scoring adds to a transfer's p50 and p99 over HTTP, against scoring off in the same
    run (target: at most 5 ms at p99)."""
    from billfold_bench.scoring import run_scoring_bench

    chosen = rates or [100, 200, 500]
    for rate in chosen:
        if rate < 1:
            raise typer.BadParameter(f"--rate must be at least 1, got {rate}")
    if rounds < 1:
        raise typer.BadParameter(f"--rounds must be at least 1, got {rounds}")
    result = _on_stack(
        run_scoring_bench,
        users=users,
        clients=clients,
        seconds=seconds,
        rates=chosen,
        rounds=rounds,
        workers=workers,
        warmup=warmup,
    )
    _report(
        result,
        json,
        *(
            f"{rate}/s: scoring adds p50 {r['added_p50_ms']} ms, p99 {r['added_p99_ms']} ms "
            f"(target at most {result['target_added_p99_ms']} ms)"
            for rate, r in result["rates"].items()
        ),
    )
    if not result["reconciled"] or result["errors"]:
        raise typer.Exit(1)


@bench_app.command("ach-import")
def ach_import_bench(
    returns: Annotated[int, typer.Option(help="Entries in the returns file.")] = 10_000,
    runs: Annotated[int, typer.Option(help="Repeat; report the median.")] = 3,
    json: JsonFlag = False,
) -> None:
    """Seconds to apply a NACHA returns file of `returns` entries (target: 10,000 in < 10 s)."""
    from billfold.platform.embedded import ensure_database
    from billfold_bench.ach import run_ach_bench

    settings = Settings()
    dsn = ensure_database(settings)
    tune_gc()
    summary = uvloop.run(run_ach_bench(settings, dsn, returns=returns, runs=runs))
    _report(
        summary,
        json,
        f"{returns:,} returns applied in {summary['apply_s_median']} s (median of {runs}); "
        f"parsing alone {summary['parse_s_median']} s; reconciled: {summary['reconciled']}",
    )


@bench_app.command("risk")
def risk_bench(
    users: Annotated[int, typer.Option(help="Generated users with a past.")] = 5_000,
    days: Annotated[int, typer.Option(help="Days of generated history.")] = 30,
    movements: Annotated[int, typer.Option(help="Movements scored in each phase.")] = 3_000,
    concurrency: Annotated[int, typer.Option(help="Movements in flight at once.")] = 16,
    json: JsonFlag = False,
) -> None:
    """Latency of scoring a movement by the real engine, model included (target: p99 <= 5 ms)."""
    from billfold_bench.risk import run_risk_bench

    result = _on_stack(
        run_risk_bench, users=users, days=days, movements=movements, concurrency=concurrency
    )
    _report(
        result,
        json,
        f"scoring adds p99 {result['p99_added_vs_baseline_ms']} ms over the baseline",
    )


@bench_app.command("transfer-cost")
def transfer_cost_bench(
    users: Annotated[int, typer.Option(help="People signed up, each funded.")] = 2_000,
    transfers: Annotated[int, typer.Option(help="Transfers measured, after half as many.")] = 6_000,
    concurrency: Annotated[int, typer.Option(help="Transfers in flight at once.")] = 32,
    scoring: Annotated[bool, typer.Option(help="Score each transfer (the risk engine).")] = True,
    json: JsonFlag = False,
) -> None:
    """CPU per P2P transfer of the app (called in-process) and of PostgreSQL and Redis."""
    from billfold.platform.embedded import ensure_database, ensure_redis
    from billfold.platform.logging import configure_logging
    from billfold_bench.server import bench_redis
    from billfold_bench.transfer_cost import run_transfer_cost

    settings = Settings().model_copy(update={"log_level": "WARNING"})
    configure_logging(settings)
    dsn = ensure_database(settings)
    redis_url = bench_redis(ensure_redis(settings))
    tune_gc()
    result = uvloop.run(
        run_transfer_cost(
            settings,
            dsn,
            redis_url,
            users=users,
            transfers=transfers,
            concurrency=concurrency,
            scoring=scoring,
        )
    )
    _report(result, json)
    if not result["reconciled"] or result["failed"]:
        raise typer.Exit(1)


@bench_app.command("history")
def history_bench(
    entries: Annotated[int, typer.Option(help="Entries in the ledger.")] = 10_000_000,
    accounts: Annotated[int, typer.Option(help="Wallets they spread over.")] = 100_000,
    hero_entries: Annotated[int, typer.Option(help="Entries of the user read.")] = 100_000,
    queries: Annotated[int, typer.Option(help="Pages read per kind of query.")] = 300,
    workers: Annotated[int, typer.Option(help="Server worker processes (over HTTP).")] = 2,
    http: Annotated[bool, typer.Option(help="Also read the pages over HTTP.")] = True,
    json: JsonFlag = False,
) -> None:
    """History page latency for one user with many transactions, in a large ledger."""
    from billfold_bench.history import run_history_bench

    result = _on_stack(
        run_history_bench,
        entries=entries,
        accounts=accounts,
        hero_entries=hero_entries,
        queries=queries,
        workers=workers,
        http=http,
    )
    _report(result, json)
    if not result["reconciled"]:
        raise typer.Exit(1)


@bench_app.command("web")
def web_bench(
    entries: Annotated[int, typer.Option(help="Entries in the ledger.")] = 1_000_000,
    accounts: Annotated[int, typer.Option(help="Wallets they spread over.")] = 10_000,
    hero_entries: Annotated[
        int, typer.Option(help="Movements of the person whose pages are read.")
    ] = 100_000,
    requests: Annotated[int, typer.Option(help="Requests timed per page.")] = 200,
    workers: Annotated[int, typer.Option(help="Server worker processes.")] = 2,
    runs: Annotated[int, typer.Option(help="Read every page this many times; medians.")] = 3,
    json: JsonFlag = False,
) -> None:
    """The web app's pages (wallet, history, console) for a person with many movements:
    p50/p99 per page, over HTTP with a session cookie; target p99 <= 50 ms."""
    from billfold_bench.web import run_web_bench

    result = _on_stack(
        run_web_bench,
        entries=entries,
        accounts=accounts,
        hero_entries=hero_entries,
        requests=requests,
        workers=workers,
        runs=runs,
    )
    _report(result, json)


@bench_app.command("events")
def events_bench(
    rate: Annotated[int, typer.Option(help="Ledger transfers/s of the lag part.")] = 1_000,
    seconds: Annotated[float, typer.Option(help="Measured length of each lag phase.")] = 30.0,
    warmup: Annotated[float, typer.Option(help="Transfers before each lag phase.")] = 5.0,
    runs: Annotated[int, typer.Option(help="Repeat each part; report medians.")] = 3,
    accounts: Annotated[int, typer.Option(help="Wallets the lag part's transfers use.")] = 10_000,
    relay_events: Annotated[
        int, typer.Option(help="Events in the outbox the relay part drains.")
    ] = 50_000,
    ledger_accounts: Annotated[
        int, typer.Option(help="Wallets of the outbox part (bench ledger's --accounts).")
    ] = 100_000,
    ledger_seconds: Annotated[
        float, typer.Option(help="Length of each bench ledger scenario of the outbox part.")
    ] = 10.0,
    submitters: Annotated[
        int, typer.Option(help="Concurrent callers of the outbox part (bench ledger's).")
    ] = 500,
    nats_url: Annotated[
        str | None,
        typer.Option(
            help="JetStream server (default: BILLFOLD_EVENTS_URL if nats://, else local)."
        ),
    ] = None,
    broker: Annotated[
        list[str] | None,
        typer.Option(
            help="Only these brokers: redis, nats, or nats-serial (JetStream publishing one "
            "message at a time, the baseline of decision 126); repeat."
        ),
    ] = None,
    part: Annotated[
        list[str] | None, typer.Option(help="Only these parts: lag, outbox, relay; repeat.")
    ] = None,
    json: JsonFlag = False,
) -> None:
    """The event stream: commit-to-consumer lag at a steady rate on Redis Streams and NATS
    JetStream (target p99 <= 250 ms), the outbox's cost to bench ledger (target >= 0.9), and
    the relay's throughput flat out."""
    from billfold_bench.events import BROKERS, PARTS, VARIANTS, run_events_bench, table
    from billfold_bench.server import bench_redis

    brokers, parts = broker or BROKERS, part or PARTS
    for name, chosen, allowed in (
        ("--broker", brokers, BROKERS + VARIANTS),
        ("--part", parts, PARTS),
    ):
        for value in chosen:
            if value not in allowed:
                raise typer.BadParameter(f"{name} '{value}' is not one of {allowed}")
    if runs < 1 or rate < 1:
        raise typer.BadParameter(f"--runs and --rate must be at least 1, got {runs} and {rate}")
    settings = Settings()
    events_url = settings.events_url or ""
    result = _on_stack(
        lambda s, dsn, redis_url, **options: run_events_bench(
            s, dsn, bench_redis(redis_url), **options
        ),
        nats_url=nats_url or (events_url if events_url.startswith("nats://") else NATS_LOCAL),
        brokers=brokers,
        parts=parts,
        runs=runs,
        rate=rate,
        seconds=seconds,
        warmup=warmup,
        accounts=accounts,
        relay_events=relay_events,
        ledger_accounts=ledger_accounts,
        ledger_seconds=ledger_seconds,
        submitters=submitters,
    )
    _report(result, json, *table(result))
    if not result["reconciled"]:
        raise typer.Exit(1)


@bench_app.command("merchant")
def merchant_bench(
    payers: Annotated[int, typer.Option(help="People (wallets) who pay the one merchant.")] = 2_000,
    wallets: Annotated[
        int, typer.Option(help="Engine part: wallets in all; uniform P2P moves among them.")
    ] = 100_000,
    submitters: Annotated[
        int, typer.Option(help="Engine part: concurrent callers, one payment at a time each.")
    ] = 500,
    seconds: Annotated[float, typer.Option(help="Engine part: length of each phase.")] = 10.0,
    warmup: Annotated[
        float, typer.Option(help="Engine part: seconds of uniform first, not counted.")
    ] = 5.0,
    rounds: Annotated[
        int, typer.Option(help="Rounds of every scenario, the order alternating; medians.")
    ] = 5,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            help="Engine part: only these: uniform, hot, or the diagnostics hot-no-fee and "
            "spread; repeat."
        ),
    ] = None,
    clients: Annotated[
        int, typer.Option(help="HTTP part: concurrent keep-alive connections (as bench api).")
    ] = 128,
    http_seconds: Annotated[float, typer.Option(help="HTTP part: length of each phase.")] = 15.0,
    http_warmup: Annotated[
        float, typer.Option(help="HTTP part: seconds of each load flat out first, not counted.")
    ] = 10.0,
    rate: Annotated[int, typer.Option(help="HTTP part: requests/s of the steady phases.")] = 1_000,
    workers: Annotated[int, typer.Option(help="HTTP part: server worker processes.")] = 2,
    in_flight_max: Annotated[
        int,
        typer.Option(
            help="HTTP part: the server's BILLFOLD_REQUESTS_IN_FLIGHT_MAX (0: no bound; the "
            "connections bound what is in flight)."
        ),
    ] = 0,
    part: Annotated[
        list[str] | None, typer.Option(help="Only these parts: engine, http; repeat.")
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Thousands of payers paying one merchant at once against uniform P2P in the same run
    (target: the hot merchant at >= 0.9 of uniform's throughput; over HTTP, p99 <= 100 ms at
    1,000 payments/s)."""
    from billfold_bench.merchant import DIAGNOSTICS, PARTS, SCENARIOS, run_merchant_bench, table

    parts, scenarios = part or list(PARTS), scenario or SCENARIOS
    for name, chosen, allowed in (
        ("--part", parts, list(PARTS)),
        ("--scenario", scenarios, SCENARIOS + DIAGNOSTICS),
    ):
        for value in chosen:
            if value not in allowed:
                raise typer.BadParameter(f"{name} '{value}' is not one of {allowed}")
    if (
        min(rounds, submitters, clients, rate, workers) < 1
        or in_flight_max < 0
        or not 1 < payers <= wallets
    ):
        raise typer.BadParameter(
            "--rounds, --submitters, --clients, --rate and --workers must be at least 1, "
            "--in-flight-max at least 0, and 1 < --payers <= --wallets"
        )
    options = {
        "engine": {
            "wallets": wallets,
            "payers": payers,
            "submitters": submitters,
            "seconds": seconds,
            "warmup": warmup,
            "rounds": rounds,
            "scenarios": scenarios,
        },
        "http": {
            "payers": payers,
            "clients": clients,
            "seconds": http_seconds,
            "warmup": http_warmup,
            "rounds": rounds,
            "rate": rate,
            "workers": workers,
            "in_flight_max": in_flight_max,
        },
    }
    result = _on_stack(run_merchant_bench, parts={name: options[name] for name in parts})
    _report(result, json, *table(result))
    http = result.get("http", {})
    if not result["reconciled"] or http.get("server_errors") or http.get("money_adds_up") is False:
        raise typer.Exit(1)


@bench_app.command("cluster")
def cluster_bench(
    directory: Annotated[
        Path, typer.Option("--dir", help="The local cluster's directory (started if not up).")
    ] = Path(".cluster"),
    base_port: Annotated[int, typer.Option(help="The local cluster's base port.")] = 7400,
    users: Annotated[int, typer.Option(help="People signed up, each funded.")] = 2_000,
    clients: Annotated[int, typer.Option(help="Concurrent keep-alive connections.")] = 64,
    seconds: Annotated[float, typer.Option(help="Length of each measured phase.")] = 10.0,
    warmup: Annotated[
        float, typer.Option(help="Seconds of transfers before each node count.")
    ] = 5.0,
    runs: Annotated[int, typer.Option(help="Measured phases per node count (the median).")] = 3,
    json: JsonFlag = False,
) -> None:
    """Transfers/s through HAProxy with 1, 2 and 3 API nodes, and CPU per transfer per tier."""
    from billfold_bench.cluster import run_cluster_bench

    result = uvloop.run(
        run_cluster_bench(
            Settings(),
            directory=directory,
            base_port=base_port,
            users=users,
            clients=clients,
            seconds=seconds,
            warmup=warmup,
            runs=runs,
        )
    )
    _report(result, json)
    if not result["reconciled"]:
        raise typer.Exit(1)
