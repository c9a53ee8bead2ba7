"""`billfold bench merchant`: thousands of payers paying one merchant at once, against uniform
P2P in the same run (issue 28). Target: the hot merchant reaches at least 0.9 of uniform P2P's
throughput; over HTTP, p99 at most 100 ms at 1,000 payments/s.

Each part is a function of PARTS, run in turn on the same stack:

- engine: through the ledger engine (`Ledger.transfer`, group commit, every check on, the
  outbox written), in a scratch database (dropped afterwards). `wallets` funded wallets, of
  which the first `payers` pay. Phases of `seconds`, `submitters` concurrent callers each
  awaiting one payment at a time:
  - uniform: P2P (`Ledger.move`) between random pairs of all the wallets, as `bench ledger`;
  - hot: merchant payments as the payments API books them: three legs (the payer's wallet
    -amount, the merchant account +(amount - fee), fee revenue +fee), code `merchant_payment`,
    ledger client `user:{payer}`, every payment to the one merchant;
  - diagnostics, run only when asked for (`--scenario`), to tell where a gap comes from:
    `hot-no-fee` (the same without the fee leg: one hot account, not two) and `spread` (three
    legs to a random wallet and a random fee wallet: the shape without the hot accounts).
  A warm-up phase (uniform, not counted) first; then `rounds` rounds, the order within a round
  alternating, so that each round's ratio compares phases next to each other in time. Medians
  of the rounds. The ledger reconciles afterwards.
- http (to come with the payments API): the same two loads through `POST /api/v1/payments`
  against the real server, p99 at a steady 1,000/s. It is a function beside `run_engine_part`,
  of the same signature, registered in PARTS; the command hands each part its own options.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from billfold.config import Settings
from billfold.ledger.accounts import open_account, open_clearing_account, open_system_account
from billfold.ledger.engine import Ledger
from billfold.ledger.errors import LedgerError
from billfold.ledger.model import AccountKind, Leg
from billfold.ledger.reconcile import reconcile
from billfold_bench import say
from billfold_bench.seed import fund_all, migrated_pool, scratch_database

RATIO_TARGET = 0.9
HTTP_RATE = 1_000
HTTP_P99_TARGET_MS = 100.0
SCENARIOS = ["uniform", "hot"]
DIAGNOSTICS = ["hot-no-fee", "spread"]
WARM_UP = "uniform"
FUNDING_MINOR = 1_000_000_00
FEE_BPS = 290  # a card-like 2.9%: what the fee leg carries is of no matter to the engine
AMOUNTS = (100, 10_000)  # minor units, drawn uniformly
# Transfers drawn at random per scenario before its first phase (outside the clock: drawing
# them as a phase starts held the event loop for seconds), shared by the submitters, each from
# its own offset, in turn.
DRAWN = 2**15


@dataclass
class Phase:
    scenario: str
    payments: int
    failed: int
    seconds: float
    payments_per_s: float
    latency_ms_p50: float
    latency_ms_p99: float
    batches: int

    @property
    def batch_mean(self) -> float:
        return round(self.payments / self.batches, 1) if self.batches else 0.0

    def line(self) -> str:
        return (
            f"{self.scenario:<11} {self.payments_per_s:>9,.0f}/s  p50 {self.latency_ms_p50:6.1f} ms"
            f"  p99 {self.latency_ms_p99:6.1f} ms  ({self.payments:,} payments, {self.failed} "
            f"refused, {self.batches:,} batches of {self.batch_mean} on average)"
        )


@dataclass(frozen=True)
class Accounts:
    wallets: list[int]
    payers: list[int]
    merchant: int
    fee_revenue: int


async def run_merchant_bench(
    settings: Settings, dsn: str, redis_url: str, *, parts: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Each part of `parts` (name in PARTS -> its options) in turn; its figures under its name."""
    result: dict[str, Any] = {"benchmark": "merchant", "parts": list(parts)}
    for name, options in parts.items():
        result[name] = await PARTS[name](settings, dsn, redis_url, **options)
    result["reconciled"] = all(result[name]["reconciled"] for name in parts)
    return result


async def run_engine_part(
    settings: Settings,
    dsn: str,
    redis_url: str,
    *,
    wallets: int,
    payers: int,
    submitters: int,
    seconds: float,
    warmup: float,
    rounds: int,
    scenarios: list[str],
) -> dict[str, Any]:
    """The engine part (module docstring). `redis_url` is unused: the engine needs none."""
    del redis_url
    sized = settings.model_copy(update={"db_pool_max": 24, "db_pool_min": 4})
    phases: dict[str, list[Phase]] = {name: [] for name in scenarios}
    async with scratch_database(dsn) as database_url:
        pool = await migrated_pool(database_url, sized)
        try:
            accounts = await _open_accounts(pool, sized, wallets, payers)
            drawn = {
                name: _draw(name, accounts, random.Random(name))
                for name in dict.fromkeys([WARM_UP, *scenarios])
            }
            if warmup > 0:
                say(f"warm-up: {WARM_UP} for {warmup:g} s, not counted ...")
                await _phase(pool, sized, WARM_UP, drawn[WARM_UP], submitters, warmup)
            for run in range(rounds):
                for name in _alternated(scenarios, run):
                    phase = await _phase(pool, sized, name, drawn[name], submitters, seconds)
                    say(f"round {run + 1}/{rounds}: {phase.line()}")
                    phases[name].append(phase)
            # Every hot payment credited the one merchant (and, with its fee, fee revenue).
            credits = await pool.fetchrow(
                """SELECT count(*) FILTER (WHERE account_id = $1) AS merchant,
                          count(*) FILTER (WHERE account_id = $2) AS fee_revenue
                     FROM entries WHERE account_id IN ($1, $2) AND amount_minor > 0""",
                accounts.merchant,
                accounts.fee_revenue,
            )
            say("reconciling ...")
            report = await reconcile(pool)
            say(report.render().splitlines()[0] + (": ok" if report.ok else ": DISCREPANCIES"))
        finally:
            await pool.close()
    ratios = [
        round(hot.payments_per_s / uniform.payments_per_s, 3)
        for hot, uniform in zip(phases.get("hot", []), phases.get("uniform", []), strict=True)
    ]
    medians = {name: _medians(rows) for name, rows in phases.items()}
    return {
        "wallets": wallets,
        "payers": payers,
        "submitters": submitters,
        "seconds": seconds,
        "rounds": rounds,
        "target_ratio": RATIO_TARGET,
        "scenarios": medians,
        "ratios": ratios,
        "ratio": statistics.median(ratios) if ratios else None,
        "met": bool(ratios) and statistics.median(ratios) >= RATIO_TARGET,
        "runs": {name: [asdict(p) for p in rows] for name, rows in phases.items()},
        "merchant_credits": credits["merchant"],
        "fee_revenue_credits": credits["fee_revenue"],
        "reconciled": report.ok,
    }


# The parts, by name; `--part` picks among them.
Part = Callable[..., Awaitable[dict[str, Any]]]
PARTS: dict[str, Part] = {"engine": run_engine_part}


async def _open_accounts(
    pool: asyncpg.Pool, settings: Settings, wallets: int, payers: int
) -> Accounts:
    say(f"opening and funding {wallets:,} wallets ({payers:,} of them pay the merchant) ...")
    bank = await open_clearing_account(pool, "USD", name="bench:bank")
    merchant = await open_account(
        pool, kind=AccountKind.MERCHANT, owner="merchant:bench", currency="USD"
    )
    fees = await open_system_account(pool, "fee_revenue", "USD", overdraft=False)
    ids = await pool.fetchval(
        """
        WITH opened AS (
            INSERT INTO accounts (kind, owner, currency)
            SELECT 'wallet', 'bench:' || g, 'USD' FROM generate_series(1, $1) g
            RETURNING id
        ) SELECT array_agg(id ORDER BY id) FROM opened
        """,
        wallets,
    )
    quiet = settings.model_copy(update={"outbox": False})
    await fund_all(pool, quiet, bank.id, list(ids), FUNDING_MINOR)
    return Accounts(list(ids), list(ids)[:payers], merchant.id, fees.id)


def _draw(scenario: str, accounts: Accounts, rng: random.Random) -> list[tuple[Leg, ...]]:
    """DRAWN transfers' legs; one that names a wallet twice is left out."""
    made: list[tuple[Leg, ...]] = []
    while len(made) < DRAWN:
        amount = rng.randint(*AMOUNTS)
        fee = amount * FEE_BPS // 10_000
        if scenario == "uniform":
            debit, credit = rng.sample(accounts.wallets, 2)
            made.append((Leg(debit, -amount, "USD"), Leg(credit, amount, "USD")))
            continue
        payer = rng.choice(accounts.payers)
        if scenario == "hot-no-fee":
            made.append((Leg(payer, -amount, "USD"), Leg(accounts.merchant, amount, "USD")))
            continue
        merchant, fee_account = accounts.merchant, accounts.fee_revenue
        if scenario == "spread":
            merchant, fee_account = rng.sample(accounts.wallets, 2)
            if payer in (merchant, fee_account):
                continue
        made.append(
            (
                Leg(payer, -amount, "USD"),
                Leg(merchant, amount - fee, "USD"),
                Leg(fee_account, fee, "USD"),
            )
        )
    return made


async def _phase(
    pool: asyncpg.Pool,
    settings: Settings,
    scenario: str,
    drawn: list[tuple[Leg, ...]],
    submitters: int,
    seconds: float,
) -> Phase:
    ledger = Ledger(pool, settings)
    await ledger.start()
    latencies: list[float] = []
    failed = 0
    run_id = uuid.uuid4().hex[:8]
    p2p = scenario == "uniform"
    stop_at = time.perf_counter() + seconds

    async def submitter(n: int) -> None:
        nonlocal failed
        i = n * (DRAWN // submitters)
        while time.perf_counter() < stop_at:
            legs = drawn[i % DRAWN]
            i += 1
            key = f"{run_id}-{n}-{i}"
            client = f"user:{legs[0].account_id}"
            started = time.perf_counter()
            try:
                if p2p:
                    await ledger.move(
                        client,
                        key,
                        debit_account_id=legs[0].account_id,
                        credit_account_id=legs[1].account_id,
                        amount_minor=legs[1].amount_minor,
                        currency="USD",
                        code="p2p",
                    )
                else:
                    await ledger.transfer(client, key, legs, code="merchant_payment")
            except LedgerError:
                failed += 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(submitter(n) for n in range(submitters)))
    elapsed = time.perf_counter() - started
    await ledger.stop()
    latencies.sort()
    return Phase(
        scenario=scenario,
        payments=len(latencies),
        failed=failed,
        seconds=round(elapsed, 2),
        payments_per_s=round(len(latencies) / elapsed, 1),
        latency_ms_p50=round(statistics.median(latencies) * 1000, 2),
        latency_ms_p99=round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        batches=ledger.batches,
    )


def _medians(rows: list[Phase]) -> dict[str, float]:
    return {
        key: round(statistics.median(getattr(r, key) for r in rows), 2)
        for key in ("payments_per_s", "latency_ms_p50", "latency_ms_p99", "batch_mean")
    }


def _alternated(items: list[str], run: int) -> list[str]:
    """The items in order on even rounds, reversed on odd ones: none always goes first."""
    return list(items) if run % 2 == 0 else list(reversed(items))


def table(result: dict[str, Any]) -> list[str]:
    """The figures as the command prints them."""
    lines = []
    engine = result.get("engine")
    if engine:
        lines.append(
            f"through the ledger engine, medians of {engine['rounds']} rounds of "
            f"{engine['seconds']:g} s, {engine['submitters']} submitters, {engine['payers']:,} "
            f"payers:"
        )
        for name, m in engine["scenarios"].items():
            lines.append(
                f"  {name:<11} {m['payments_per_s']:>9,.0f}/s  p50 {m['latency_ms_p50']:6.1f} ms"
                f"  p99 {m['latency_ms_p99']:6.1f} ms  ({m['batch_mean']} a batch)"
            )
        if engine["ratio"] is not None:
            lines.append(
                f"  hot / uniform = {engine['ratio']:.3f} (rounds: "
                f"{', '.join(f'{r:.3f}' for r in engine['ratios'])}; target >= "
                f"{engine['target_ratio']}): {'met' if engine['met'] else 'NOT met'}"
            )
    return lines
