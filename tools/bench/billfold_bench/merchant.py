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
- http: the real server (`billfold serve`, its workers, as `bench api` runs it: LOAD_TEST_RULES,
  rate limits off), in a scratch database of its own with `payers` people signed up, funded
  and known on their device (bench.api.seed_people), and one merchant owned by one more
  person. `bench api`'s generator (bench.api.drive_http: `clients` keep-alive connections)
  sends two loads:
  - uniform: `POST /api/v1/transfers` between random pairs of the payers;
  - hot: `POST /api/v1/payments`, a random payer paying the merchant's static QR code and an
    amount.
  A warm-up of each load flat out (`warmup` seconds, not counted); then `rounds` rounds, each
  a flat-out phase (closed loop: each connection sends when answered) of each load, then a
  phase of each at a steady `rate` per second (open loop: latency counts from when a request
  was due), the order within a round alternating. Medians of the rounds; the ratio hot /
  uniform of the flat-out phases, round by round. Every answer but a 201 is counted (a 5xx
  fails the run, but a 503 `overloaded` under a bound asked for: in_flight_max); afterwards
  the merchant account must hold the sum of (amount - fee) of the payments answered 201, fee
  revenue their fees, and the ledger must reconcile.

The command hands each part its own options.
"""

from __future__ import annotations

import asyncio
import functools
import random
import secrets
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg
import orjson

from billfold.config import Settings
from billfold.ledger.accounts import (
    find_account,
    open_account,
    open_clearing_account,
    open_system_account,
    posted_balance,
)
from billfold.ledger.engine import Ledger
from billfold.ledger.errors import LedgerError
from billfold.ledger.model import AccountKind, Leg
from billfold.ledger.reconcile import reconcile
from billfold.merchants.fees import merchant_fee_minor
from billfold.merchants.profiles import (
    Merchant,
    check_create_merchant,
    do_create_merchant,
    static_payload,
)
from billfold.platform.currency import WALLET_CURRENCY
from billfold.wallet.money import parse_amount
from billfold_bench import say
from billfold_bench.api import drive_http, quantiles, risk_scrape, seed_people
from billfold_bench.seed import fund_all, migrated_pool, scratch_database
from billfold_bench.server import running_server
from billfold_bench.traffic import Send, app_tokens, payment_request

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


# The HTTP part's merchant, as its owner would sign it up.
SHOP = {"name": "Bench Coffee", "mcc": "5814", "city": "Springfield", "country": "US"}
# The two loads' routes, and the kind of movement each is scored as (the server's metrics).
ROUTES = {
    "uniform": ("/api/v1/transfers", "p2p"),
    "hot": ("/api/v1/payments", "merchant_payment"),
}
# Figures of a phase of drive_http kept for the medians; "transfers_per_s" counts 201s.
HTTP_FIGURES = ("transfers_per_s", "latency_ms_p50", "latency_ms_p99")


@dataclass
class Paid:
    """The hot payments the server answered 201, as the answers say: their count, prices,
    and what the merchant and fee revenue are owed at the server's fee settings."""

    fee_bps: int
    fee_fixed_minor: int
    payments: int = 0
    amount_minor: int = 0
    fees_minor: int = 0

    def answered(self, status: int, body: bytes) -> None:
        if status != 201:
            return
        amount = parse_amount(orjson.loads(body)["amount"], WALLET_CURRENCY)
        self.payments += 1
        self.amount_minor += amount
        self.fees_minor += merchant_fee_minor(amount, self.fee_bps, self.fee_fixed_minor)

    @property
    def net_minor(self) -> int:
        return self.amount_minor - self.fees_minor


async def run_http_part(
    settings: Settings,
    dsn: str,
    redis_url: str,
    *,
    payers: int,
    clients: int,
    seconds: float,
    warmup: float,
    rounds: int,
    rate: int,
    workers: int,
    in_flight_max: int = 0,
) -> dict[str, Any]:
    """The HTTP part (module docstring). `in_flight_max`: the server's
    BILLFOLD_REQUESTS_IN_FLIGHT_MAX; by default no bound, as the generator's `clients`
    connections bound what is in flight (with 128 of them split unevenly over two workers, the
    shipped bound of 64 a worker shed some of the flat-out phases' requests, each client then
    waiting a second: what shedding costs is `bench api`'s overload phase's to measure)."""
    paid = Paid(settings.merchant_fee_bps, settings.merchant_fee_fixed_minor)
    server_settings = {
        # The server's fee is the one the answers are checked at, whatever its environment says.
        "BILLFOLD_MERCHANT_FEE_BPS": str(paid.fee_bps),
        "BILLFOLD_MERCHANT_FEE_FIXED_MINOR": str(paid.fee_fixed_minor),
        "BILLFOLD_REQUESTS_IN_FLIGHT_MAX": str(in_flight_max),
    }
    flat: dict[str, list[dict[str, Any]]] = {name: [] for name in SCENARIOS}
    steady: dict[str, list[dict[str, Any]]] = {name: [] for name in SCENARIOS}
    statuses: dict[str, dict[str, int]] = {name: {} for name in SCENARIOS}
    # The 5xx answers by status and problem code: any but a 503 `overloaded` (shed under a
    # bound, nothing done) fails the run.
    failed: dict[str, int] = {}

    def answered(name: str, status: int, body: bytes) -> None:
        if status >= 500:
            label = f"{status} {_problem_code(body)}"
            failed[label] = failed.get(label, 0) + 1
        if name == "hot":
            paid.answered(status, body)

    async with scratch_database(dsn) as database_url:
        pool = await migrated_pool(database_url, settings)
        try:
            people = await seed_people(pool, settings, payers + 1)
            owner = people.pop()  # bench_{payers + 1}: the merchant's, paying no one
            merchant = await _open_merchant(pool, owner)
            key = secrets.token_urlsafe(48)
            tokens = app_tokens(people, key, 3600 * 4)
            sends: dict[str, Send | None] = {
                "uniform": None,  # drive_http's own: a transfer between two of `people`
                "hot": functools.partial(
                    payment_request,
                    payers=len(people),
                    tokens=tokens,
                    qr_payload=static_payload(merchant),
                ),
            }
            async with running_server(database_url, redis_url, key, workers, server_settings) as (
                port,
                server,
            ):
                say(f"server up with {workers} workers; {clients} clients; {payers:,} payers")

                async def drive(name: str, length: float, at: int | None) -> dict[str, Any]:
                    route, kind = ROUTES[name]
                    before = await risk_scrape(port, kind, route)
                    figures = await drive_http(
                        port,
                        people,
                        tokens,
                        clients,
                        seconds=length,
                        rate=at,
                        server=server.pid,
                        send=sends[name],
                        answered=functools.partial(answered, name),
                    )
                    after = await risk_scrape(port, kind, route)
                    figures["in_server"] = quantiles(before.served, after.served, "requests")
                    figures["scoring_in_server"] = quantiles(before.buckets, after.buckets)
                    figures["risk_timeouts"] = int(after.timeouts - before.timeouts)
                    for status, count in figures["statuses"].items():
                        statuses[name][status] = statuses[name].get(status, 0) + count
                    return figures

                if warmup > 0:
                    for name in SCENARIOS:
                        say(_http_line(f"warm-up {name}", await drive(name, warmup, None)))
                for run in range(rounds):
                    order = _alternated(SCENARIOS, run)
                    for name in order:
                        flat[name].append(await drive(name, seconds, None))
                        say(_http_line(f"round {run + 1}/{rounds}: {name}", flat[name][-1]))
                    for name in order:
                        steady[name].append(await drive(name, seconds, rate))
                        label = f"round {run + 1}/{rounds}: {name} at {rate:,}/s"
                        say(_http_line(label, steady[name][-1]))
            books = await _merchant_books(pool, merchant)
            say("reconciling ...")
            report = await reconcile(pool)
            say(report.render().splitlines()[0] + (": ok" if report.ok else ": DISCREPANCIES"))
        finally:
            await pool.close()
    ratios = [
        round(hot["transfers_per_s"] / uniform["transfers_per_s"], 3)
        for hot, uniform in zip(flat["hot"], flat["uniform"], strict=True)
        if uniform["transfers_per_s"]
    ]
    ratio = statistics.median(ratios) if ratios else None
    medians = {
        name: {
            "flat_out": _http_medians(flat[name]),
            f"steady_{rate}": _http_medians(steady[name]),
        }
        for name in SCENARIOS
    }
    hot_p99 = medians["hot"][f"steady_{rate}"]["latency_ms_p99"]
    not_made = {
        name: {s: n for s, n in counted.items() if s != "201"} for name, counted in statuses.items()
    }
    money = {
        "payments_answered_201": paid.payments,
        "payments_stored": books["payments"],
        "merchant_minor": books["merchant_minor"],
        "merchant_expected_minor": paid.net_minor,
        "fee_revenue_minor": books["fee_revenue_minor"],
        "fee_revenue_expected_minor": paid.fees_minor,
    }
    return {
        "payers": payers,
        "clients": clients,
        "workers": workers,
        "seconds": seconds,
        "warmup": warmup,
        "rounds": rounds,
        "rate": rate,
        "target_ratio": RATIO_TARGET,
        "target_p99_ms": HTTP_P99_TARGET_MS,
        "scenarios": medians,
        "ratios": ratios,
        "ratio": ratio,
        "ratio_met": ratio is not None and ratio >= RATIO_TARGET,
        "p99_met": hot_p99 is not None and rate >= HTTP_RATE and hot_p99 <= HTTP_P99_TARGET_MS,
        "runs": {"flat_out": flat, f"steady_{rate}": steady},
        "statuses": statuses,
        "not_201": not_made,
        "answers_5xx": failed,
        "shed": failed.get("503 overloaded", 0),
        "server_errors": sum(n for label, n in failed.items() if label != "503 overloaded"),
        "money": money,
        "money_adds_up": (
            money["payments_answered_201"] == money["payments_stored"]
            and money["merchant_minor"] == money["merchant_expected_minor"]
            and money["fee_revenue_minor"] == money["fee_revenue_expected_minor"]
        ),
        "reconciled": report.ok,
    }


def _problem_code(body: bytes) -> str:
    try:
        problem = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "(no problem)"
    code = problem.get("code") if isinstance(problem, dict) else None
    return code if isinstance(code, str) else "(no code)"


async def _open_merchant(pool: asyncpg.Pool, owner: str) -> Merchant:
    """The one merchant, signed up as its owner would (merchants.profiles)."""
    new = check_create_merchant(SHOP["name"], SHOP["mcc"], SHOP["city"], SHOP["country"])
    return await do_create_merchant(pool, uuid.UUID(owner), new)


async def _merchant_books(pool: asyncpg.Pool, merchant: Merchant) -> dict[str, int]:
    """What the database says: the merchant's payments, its account's balance and fee
    revenue's (the run's payments its only credits)."""
    fee_revenue = await find_account(pool, f"system:fee_revenue:{WALLET_CURRENCY}")
    return {
        "payments": await pool.fetchval(
            "SELECT count(*) FROM merchant_payments WHERE merchant_id = $1", merchant.id
        ),
        "merchant_minor": await posted_balance(pool, merchant.account_id),
        "fee_revenue_minor": fee_revenue.posted_minor if fee_revenue else 0,
    }


def _http_medians(phases: list[dict[str, Any]]) -> dict[str, float | None]:
    medians: dict[str, float | None] = {}
    for key in HTTP_FIGURES:
        values = [p[key] for p in phases if p[key] is not None]
        name = "per_s" if key == "transfers_per_s" else key
        medians[name] = round(statistics.median(values), 2) if values else None
    return medians


def _http_line(label: str, figures: dict[str, Any]) -> str:
    server = figures["in_server"]
    return (
        f"{label:<30} {figures['transfers_per_s']:>7,.0f}/s  p50 {figures['latency_ms_p50']} ms"
        f"  p99 {figures['latency_ms_p99']} ms  statuses {figures['statuses']}"
        f"  (in the server: p99 <= {server.get('p99_ms_at_most')} ms)"
    )


# The parts, by name; `--part` picks among them.
Part = Callable[..., Awaitable[dict[str, Any]]]
PARTS: dict[str, Part] = {"engine": run_engine_part, "http": run_http_part}


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
    http = result.get("http")
    if http:
        steady = f"steady_{http['rate']}"
        lines.append(
            f"over HTTP, medians of {http['rounds']} rounds of {http['seconds']:g} s, "
            f"{http['clients']} clients, {http['workers']} workers, {http['payers']:,} payers:"
        )
        for name, m in http["scenarios"].items():
            f, s = m["flat_out"], m[steady]
            lines.append(
                f"  {name:<8} flat out {f['per_s']:>7,.0f}/s  p50 {f['latency_ms_p50']} ms  p99 "
                f"{f['latency_ms_p99']} ms; at {http['rate']:,}/s {s['per_s']:,.0f}/s  p50 "
                f"{s['latency_ms_p50']} ms  p99 {s['latency_ms_p99']} ms"
            )
        if http["ratio"] is not None:
            lines.append(
                f"  hot / uniform = {http['ratio']:.3f} (rounds: "
                f"{', '.join(f'{r:.3f}' for r in http['ratios'])}; target >= "
                f"{http['target_ratio']}): {'met' if http['ratio_met'] else 'NOT met'}"
            )
        lines.append(
            f"  hot p99 at {http['rate']:,}/s: {http['scenarios']['hot'][steady]['latency_ms_p99']}"
            f" ms (target <= {http['target_p99_ms']:g} ms at {HTTP_RATE:,}/s): "
            f"{'met' if http['p99_met'] else 'NOT met'}"
        )
        lines.append(
            f"  not 201: {http['not_201']}; 5xx: {http['answers_5xx']}; the merchant's money "
            f"{'adds up' if http['money_adds_up'] else 'DOES NOT ADD UP'}: {http['money']}"
        )
    return lines
