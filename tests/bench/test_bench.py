"""The benchmark commands' own measuring: small runs that must complete and reconcile."""

from __future__ import annotations

import os
import subprocess
import sys

import nats
import pytest
from redis.asyncio import Redis

from billfold.config import Settings
from billfold.events.brokers import STREAM
from billfold_bench.api import count_timeouts, run_api_bench
from billfold_bench.cpu import per_unit_us, processes_cpu
from billfold_bench.events import run_events_bench, table
from billfold_bench.history import run_history_bench
from billfold_bench.merchant import run_merchant_bench
from billfold_bench.merchant import table as merchant_table
from billfold_bench.reconcile import run_reconcile_bench
from billfold_bench.risk import run_risk_bench
from billfold_bench.scoring import run_scoring_bench
from billfold_bench.traffic import p99_ms
from billfold_bench.transfer_cost import run_transfer_cost
from billfold_bench.web import run_web_bench
from tests.events.test_relay import NATS_URL, nats_or_skip


@pytest.mark.parametrize("scoring", [True, False])
async def test_transfer_cost_measures_real_transfers(settings: Settings, scoring: bool) -> None:
    assert settings.database_url and settings.redis_url
    result = await run_transfer_cost(
        settings,
        settings.database_url,
        settings.redis_url,
        users=30,
        transfers=40,
        concurrency=4,
        scoring=scoring,
    )
    assert result["failed"] == 0 and result["reconciled"]
    assert result["cpu_us_per_transfer"]["app"] > 0


async def test_merchant_bench_pays_one_merchant_against_uniform_p2p(settings: Settings) -> None:
    """Every scenario runs each round and reconciles; the hot payments, and only they, credit
    the one merchant, each with its fee to fee revenue; a ratio per round."""
    assert settings.database_url and settings.redis_url
    result = await run_merchant_bench(
        settings,
        settings.database_url,
        settings.redis_url,
        parts={
            "engine": {
                "wallets": 60,
                "payers": 20,
                "submitters": 4,
                "seconds": 0.3,
                "warmup": 0.1,
                "rounds": 2,
                "scenarios": ["uniform", "hot", "hot-no-fee", "spread"],
            }
        },
    )
    engine = result["engine"]
    assert result["reconciled"] and engine["reconciled"]
    runs = engine["runs"]
    assert {name: len(phases) for name, phases in runs.items()} == dict.fromkeys(runs, 2)
    assert all(p["payments"] > 0 and p["failed"] == 0 for phases in runs.values() for p in phases)
    hot = sum(p["payments"] for p in runs["hot"])
    assert engine["fee_revenue_credits"] == hot
    assert engine["merchant_credits"] == hot + sum(p["payments"] for p in runs["hot-no-fee"])
    assert len(engine["ratios"]) == 2
    assert engine["ratio"] == pytest.approx(sum(engine["ratios"]) / 2)
    assert merchant_table(result)[-1].startswith("  hot / uniform = ")


async def test_merchant_bench_over_http_pays_one_merchant_and_its_money_adds_up(
    settings: Settings,
) -> None:
    """The HTTP part: each load flat out and at a steady rate every round, every request
    answered 201; the payments the server answered are the merchant's, and its account holds
    their prices less their fees, fee revenue the fees; a ratio per round."""
    assert settings.database_url and settings.redis_url
    result = await run_merchant_bench(
        settings,
        settings.database_url,
        settings.redis_url,
        parts={
            "http": {
                "payers": 30,
                "clients": 4,
                "seconds": 1.0,
                "warmup": 0.3,
                "rounds": 2,
                "rate": 20,
                "workers": 1,
            }
        },
    )
    http = result["http"]
    assert result["parts"] == ["http"] and result["reconciled"] and http["reconciled"]
    assert set(http["runs"]) == {"flat_out", "steady_20"}
    for phases in http["runs"].values():
        assert {name: len(rows) for name, rows in phases.items()} == {"uniform": 2, "hot": 2}
        assert all(p["transfers_per_s"] > 0 for rows in phases.values() for p in rows)
    assert http["not_201"] == {"uniform": {}, "hot": {}}
    assert http["answers_5xx"] == {} and http["server_errors"] == 0
    money = http["money"]
    assert money["payments_answered_201"] == http["statuses"]["hot"]["201"] > 0
    assert money["payments_stored"] == money["payments_answered_201"]
    assert money["merchant_minor"] == money["merchant_expected_minor"] > 0
    assert money["fee_revenue_minor"] == money["fee_revenue_expected_minor"] > 0
    assert http["money_adds_up"]
    assert len(http["ratios"]) == 2 and http["ratio"] == pytest.approx(sum(http["ratios"]) / 2)
    shown = merchant_table(result)
    assert shown[0].startswith("over HTTP, medians of 2 rounds")
    assert any(line.startswith("  hot / uniform = ") for line in shown)


async def test_reconcile_bench_spreads_its_ledger_over_twelve_monthly_partitions(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every month gets its own partitions and its share of the rows, none the default ones;
    entries numbered and summed on across months, so the ledger reconciles."""
    assert settings.database_url
    result = await run_reconcile_bench(
        settings, settings.database_url, entries=6_000, accounts=40, workers=2
    )
    assert result["ok"] and result["entries"] == 6_000 and result["transfers"] == 3_000
    shown = capsys.readouterr().err.splitlines()
    months = [line for line in shown if line.startswith("  20") and " transfers, " in line]
    assert len(months) == 12
    # 3,000 transfers over a year: 230-255 a month (28 to 31 days).
    assert all(225 <= int(line.split()[1].replace(",", "")) <= 260 for line in months)
    assert "  rows in transfers_default and entries_default: 0" in shown


async def test_history_bench_reads_pages_in_process_and_over_http(settings: Settings) -> None:
    assert settings.database_url and settings.redis_url
    result = await run_history_bench(
        settings,
        settings.database_url,
        settings.redis_url,
        entries=4_000,
        accounts=50,
        hero_entries=400,
        queries=5,
        workers=1,
    )
    assert result["reconciled"] and result["entries"] == 4_000
    pages = result["results"]
    for kind in ("first_page", "type_and_30_days", "http_first_page", "http_type_and_30_days"):
        assert pages[kind]["latency_ms_p99"] > 0, kind
    # The same pages through the API as through the function: 50 rows, and a 30-day window of
    # the hero's P2P transfers (half of 400 over a year are P2P: about 16 in 30 days).
    assert pages["http_first_page"]["rows_per_page"] == pages["first_page"]["rows_per_page"] == 50
    assert 0 < pages["http_type_and_30_days"]["rows_per_page"] < 50


async def test_web_bench_reads_every_page_as_the_signed_in_hero(settings: Settings) -> None:
    """A tiny `bench web`: every page answered 200 to the hero's session cookie (the bench
    refuses any other answer), with its p50 and p99."""
    assert settings.database_url and settings.redis_url
    result = await run_web_bench(
        settings,
        settings.database_url,
        settings.redis_url,
        entries=4_000,
        accounts=50,
        hero_entries=400,
        requests=3,
        workers=1,
        runs=1,
    )
    pages = result["results"]
    assert {"wallet home", "history, deep page", "console, a person"} <= set(pages)
    for label, figures in pages.items():
        assert 0 < figures["latency_ms_p50"] <= figures["latency_ms_p99"], label
        assert figures["kib"] > 1, label


async def test_risk_bench_times_each_part_and_payments_to_a_popular_person_and_a_pair(
    settings: Settings, redis: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert settings.database_url and settings.redis_url
    counters_before = await _velocity_keys(redis)
    result = await run_risk_bench(
        settings,
        settings.database_url,
        settings.redis_url,
        users=200,
        days=14,
        movements=40,
        concurrency=4,
    )
    for part in (
        "baseline",
        "assess_one_at_a_time",
        "past_query",
        "past_query_to_popular",
        "past_query_between_a_pair",
    ):
        assert result[part]["p99_ms"] > 0, part
    assert result["features"]["per_s"] > 0 and result["model"]["per_s"] > 0
    assert result["popular_vs_ordinary_past_p50"] > 0
    assert result["pair_vs_ordinary_past_p50"] > 0
    kinds = result["assess_one_at_a_time_by_kind"]
    assert set(kinds) <= {"p2p", "add_funds", "cash_out"} and "p2p" in kinds
    assert all(figures["p50_ms"] > 0 for figures in kinds.values())
    # Its velocity counters went to the benchmarks' own Redis database, not to the one given.
    assert await _velocity_keys(redis) == counters_before
    # Progress goes to stderr: stdout is for the figures (`--json`).
    shown = capsys.readouterr()
    assert shown.out == "" and "seeded in" in shown.err


async def _velocity_keys(redis: Redis) -> int:
    return len([key async for key in redis.scan_iter(match="vel:*", count=1000)])


async def test_bench_api_overload_phase_counts_what_the_server_admitted_and_refused(
    settings: Settings,
) -> None:
    """With room for one request at a time, the overload phase (twice the throughput phase's
    rate, a connection per request) is partly refused; every refusal is a clean 503
    `overloaded`, as many as the server counts, and the ledger reconciles."""
    assert settings.database_url and settings.redis_url
    result = await run_api_bench(
        settings,
        settings.database_url,
        settings.redis_url,
        users=40,
        clients=4,
        seconds=2.0,
        rate=20,
        workers=1,
        warmup=0.5,
        overload=2.0,
        in_flight_max=1,
    )
    overload = result["overload"]
    assert result["reconciled"]
    assert overload["offered_per_s"] == round(2 * result["throughput"]["transfers_per_s"], 1)
    assert overload["transfers_per_s"] > 0 and overload["refused"] > 0
    assert overload["unclean"] == 0
    assert overload["refused_codes"] == {"overloaded": overload["shed_by_server"]}
    # The server's own time for the admitted ones (its histogram), apart from the refused.
    assert overload["admitted_in_server"]["requests"] == overload["statuses"]["201"]
    assert overload["goodput_vs_throughput"] > 0


def test_bench_api_counts_the_transfers_let_through_unscored() -> None:
    """A transfer whose scoring overran its budget went on unscored: `bench api` reports how
    many did in a phase, and the rate of the others, from the server's counter."""
    phase = {"transfers_per_s": 2_000.0, "statuses": {"201": 120_000, "409": 3}}
    count_timeouts(phase, 500.0, 30_500.0)
    assert phase["risk_timeouts"] == 30_000
    assert phase["within_budget_per_s"] == 1_500.0
    nothing = {"transfers_per_s": 0.0, "statuses": {}}
    count_timeouts(nothing, 0.0, 0.0)
    assert nothing["within_budget_per_s"] == 0.0


def test_cpu_is_read_for_a_process_and_its_children_and_divided_per_request() -> None:
    """`bench api` charges each phase's CPU to the server (with its workers), PostgreSQL, Redis
    and the load generator; a server that is not on this machine reads as None."""
    with subprocess.Popen(
        [sys.executable, "-c", BUSY_CHILD], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    ) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == b"busy\n"
            alone = processes_cpu(tree=child.pid)
            with_children = processes_cpu(tree=os.getpid())
            assert alone is not None and with_children is not None
            assert with_children >= alone >= 0.3
        finally:
            child.kill()
    assert processes_cpu("no-such-server-here") is None
    before = {"server": 1.0, "postgresql": None, "redis": 2.0}
    after = {"server": 1.5, "postgresql": None, "redis": 2.0}
    assert per_unit_us(before, after, 1_000) == {"server": 500, "postgresql": None, "redis": 0}
    assert per_unit_us(before, after, 0) == {"server": None, "postgresql": None, "redis": None}


# A child that spends 0.5 s of CPU, says so, and waits to be killed. /proc counts CPU in clock
# ticks sampled by the scheduler, which may read a little under the process's own clock: the
# test asks for 0.3 s of the 0.5.
BUSY_CHILD = """
import sys, time
start = time.process_time()
while time.process_time() - start < 0.5:
    pass
print("busy", flush=True)
time.sleep(30)
"""


def test_a_stall_shows_in_its_slice() -> None:
    assert p99_ms([0.010] * 99 + [0.500], 1) == 500.0
    assert p99_ms([0.010] * 200 + [0.500], 1) == 10.0


async def test_scoring_bench_compares_scoring_off_and_on_round_by_round(
    settings: Settings,
) -> None:
    """Two rounds, each starting the server with scoring off and on: every rate has both
    configurations' figures for each round and what scoring added, and exactly the transfers
    made while scoring was on left an assessment."""
    assert settings.database_url and settings.redis_url
    result = await run_scoring_bench(
        settings,
        settings.database_url,
        settings.redis_url,
        users=40,
        clients=4,
        seconds=1.0,
        rates=[20, 40],
        rounds=2,
        workers=1,
        warmup=0.5,
    )
    assert result["reconciled"] and result["errors"] == 0
    assert result["assessments_stored"] == result["scored_transfers"] > 0
    for rate in ("20", "40"):
        compared = result["rates"][rate]
        for mode in ("off", "on"):
            assert len(compared[mode]["p99_ms"]) == 2 and all(compared[mode]["p99_ms"])
        by_round = [
            round(on - off, 2)
            for on, off in zip(compared["on"]["p99_ms"], compared["off"]["p99_ms"], strict=True)
        ]
        assert compared["added_p99_ms_by_round"] == by_round
        assert compared["added_p99_ms"] == round(sum(by_round) / 2, 2)


async def test_events_bench_measures_lag_outbox_cost_and_relay_on_both_brokers(
    settings: Settings, redis: Redis
) -> None:
    """A tiny `bench events`: on Redis Streams and on JetStream every measured transfer's event
    reached the consumer, with a lag and its parts; the outbox's cost is the ratio of `bench
    ledger` with and without it in each run; the relay drained every event it was given. The
    bench's JetStream streams and its Redis stream are gone afterwards."""
    assert settings.database_url and settings.redis_url
    jetstream = await nats_or_skip()
    await jetstream.close()
    streams_before = await _bench_streams()
    result = await run_events_bench(
        settings,
        settings.database_url,
        settings.redis_url,
        nats_url=NATS_URL,
        brokers=["redis", "nats"],
        parts=["lag", "outbox", "relay"],
        runs=2,
        rate=50,
        seconds=1.0,
        warmup=0.3,
        accounts=20,
        relay_events=300,
        ledger_accounts=50,
        ledger_seconds=0.3,
        submitters=4,
    )
    assert result["reconciled"]
    for broker in ("redis", "nats"):
        runs = result["lag"]["runs"][broker]
        assert len(runs) == 2 and all(r["missing"] == 0 and r["transfers"] > 0 for r in runs)
        lag = result["lag"]["brokers"][broker]
        assert 0 < lag["lag_ms_p50"] <= lag["lag_ms_p99"]
        assert lag["parts_ms"]["commit_to_relay"]["p99"] > 0
        assert result["relay"]["brokers"][broker]["events_per_s"] > 0
    for scenario in ("uniform", "hot"):
        outbox = result["outbox"]["scenarios"][scenario]
        assert len(outbox["ratios"]) == 2 and outbox["ratio"] > 0
    assert "relay flat out, 300 events, median of 2:" in table(result)
    assert await _bench_streams() <= streams_before
    assert await redis.exists(STREAM) == 0


async def _bench_streams() -> set[str]:
    client = await nats.connect(NATS_URL, connect_timeout=2)
    try:
        names = await client.jetstream().streams_info()
        return {s.config.name for s in names if (s.config.name or "").startswith("BILLFOLD_BENCH")}
    finally:
        await client.close()
