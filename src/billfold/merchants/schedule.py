"""Daily payouts: each active merchant on payout_schedule 'daily' is paid its whole available
balance (if at least the minimum) to its payout bank account, once a day.

Every process runs the schedule (`keep_paying_out`), and an operator may run a day again
(`billfold merchants payouts run --date`): a run claims each merchant's (merchant, day) row in
merchant_payout_runs before paying it, so that of all of them one pays it, once. A claim left
unfinished (its run died) is taken over after STALE_CLAIM; the payout's own idempotency key
(`daily:<day>`, per merchant) makes paying it again a replay (for the amount the dead run's
hold holds, if it got that far). A refusal (the risk checks, a
limit, the bank account no longer verified) is the day's outcome too, and is told to the owner
as `payout.declined` naming its reason; a failure of the service itself (scoring or the ledger
busy) leaves the merchant to a later run.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from billfold.config import Settings
from billfold.events import outbox
from billfold.funding.actions import payout_key
from billfold.funding.movements import movement_id
from billfold.funding.payouts import find_payout, held_under
from billfold.funding.service import Funding
from billfold.ledger.accounts import get_account
from billfold.ledger.errors import IdempotencyKeyReused
from billfold.merchants.payouts import PayoutAsked, check_payout, do_payout, payee
from billfold.merchants.profiles import MERCHANT_COLUMNS, Merchant
from billfold.platform.currency import WALLET_CURRENCY, format_amount
from billfold.platform.errors import BillfoldError
from billfold.platform.logging import get_logger
from billfold.platform.tasks import raise_if_cancelling
from billfold.risk.gate import DeclinedByRisk, Gate, Origin
from billfold.wallet.users import get_user

log = get_logger("billfold.merchants.schedule")
STALE_CLAIM = timedelta(minutes=10)
BATCH = 200
INTERVAL_S = 60.0
# A scheduled payout comes from no device, country or address.
SCHEDULED = Origin(None, None, None)
RISK_CHECKS = "risk_checks"

_DUE = f"""
SELECT {MERCHANT_COLUMNS} FROM merchants m
 WHERE m.payout_schedule = 'daily' AND m.status = 'active' AND m.id > $3
   AND NOT EXISTS (SELECT 1 FROM merchant_payout_runs r
                    WHERE r.merchant_id = m.id AND r.day = $1
                      AND (r.finished_at IS NOT NULL OR r.claimed_at > now() - $2::interval))
 ORDER BY m.id LIMIT $4
"""
_CLAIM = """
INSERT INTO merchant_payout_runs (merchant_id, day) VALUES ($1, $2)
    ON CONFLICT (merchant_id, day) DO UPDATE SET claimed_at = now()
 WHERE merchant_payout_runs.finished_at IS NULL
   AND merchant_payout_runs.claimed_at <= now() - $3::interval
RETURNING 1
"""
_FINISH = """
UPDATE merchant_payout_runs SET finished_at = now(), outcome = $3, detail = $4, payout_id = $5
 WHERE merchant_id = $1 AND day = $2
"""
_RELEASE = """
DELETE FROM merchant_payout_runs WHERE merchant_id = $1 AND day = $2 AND finished_at IS NULL
"""


@dataclass
class RunReport:
    """What a run did for its day, merchant by merchant."""

    day: date
    paid: int = 0
    below_minimum: int = 0
    refused: int = 0
    left: int = 0  # for a later run: the service failed (scoring or the ledger busy)

    @property
    def complete(self) -> bool:
        return self.left == 0


@dataclass(frozen=True)
class Outcome:
    result: str  # paid | below_minimum | refused | left
    detail: str | None = None  # a refusal's code
    payout_id: uuid.UUID | None = None
    amount_minor: int = 0


def daily_key(day: date) -> str:
    return f"daily:{day.isoformat()}"


async def run_daily_payouts(
    funding: Funding, gate: Gate, day: date, minimum_minor: int
) -> RunReport:
    """Pay every daily merchant not yet paid for `day` (nor claimed by a run still going):
    its available balance, if at least `minimum_minor`. Safe to run in many processes at
    once and again: each merchant's day is claimed first, and paid by one run.

    Locks: each merchant's row of the day in merchant_payout_runs (claimed by a committed
    insert, not a lock held); then those of funding.actions.do_payout."""
    report = RunReport(day)
    after = uuid.UUID(int=0)
    while True:
        rows = await funding.pool.fetch(_DUE, day, STALE_CLAIM, after, BATCH)
        for row in rows:
            merchant = Merchant.from_row(row)
            claimed = await funding.pool.fetchval(_CLAIM, merchant.id, day, STALE_CLAIM)
            if claimed:
                outcome = await _pay(funding, gate, merchant, day, minimum_minor)
                await _record(funding.pool, merchant, day, outcome)
                _count(report, outcome)
        if len(rows) < BATCH:
            return report
        after = rows[-1]["id"]


async def _pay(
    funding: Funding, gate: Gate, merchant: Merchant, day: date, minimum_minor: int
) -> Outcome:
    owner = await get_user(funding.pool, merchant.owner_id)
    # A run that died after the ledger held the day's payout, before recording it, fixed its
    # amount: this one asks for the same (the balance has changed since, by that hold too).
    held = await held_under(funding, owner, payee(merchant), daily_key(day))
    account = await get_account(funding.pool, merchant.account_id)
    available = held if held is not None else account.available_minor
    if held is None and available < minimum_minor:
        return Outcome("below_minimum")
    bank = str(merchant.payout_bank_account_id)
    amount = format_amount(available, WALLET_CURRENCY)
    asked = PayoutAsked(str(merchant.id), amount, bank, daily_key(day))
    try:
        checked = await check_payout(funding.pool, owner, asked)
        ft, _ = await do_payout(funding, gate, checked, SCHEDULED)
    except DeclinedByRisk:
        return Outcome("refused", RISK_CHECKS, amount_minor=available)
    except IdempotencyKeyReused:
        # The day's key was used for another amount: by a run that died before recording its
        # payout (the balance changed since), or whose hold the ledger refused.
        key = payout_key(payee(merchant), daily_key(day))
        made = await find_payout(funding.pool, merchant.id, movement_id(owner, key))
        if made is None:
            return Outcome("refused", IdempotencyKeyReused.code, amount_minor=available)
        return Outcome("paid", payout_id=made.id, amount_minor=made.amount_minor)
    except BillfoldError as error:
        if error.status >= 500:
            return Outcome("left", error.code)
        return Outcome("refused", error.code, amount_minor=available)
    return Outcome("paid", payout_id=ft.id, amount_minor=ft.amount_minor)


async def _record(pool: asyncpg.Pool, merchant: Merchant, day: date, outcome: Outcome) -> None:
    """The day's outcome for the merchant, and a refusal told to its owner, in one
    transaction; a merchant left for later is released to the next run at once."""
    async with pool.acquire() as conn, conn.transaction():
        if outcome.result == "left":
            await conn.execute(_RELEASE, merchant.id, day)
            return
        await conn.execute(
            _FINISH, merchant.id, day, outcome.result, outcome.detail, outcome.payout_id
        )
        if outcome.result == "refused":
            await outbox.write(conn, [_declined(merchant, outcome)])


def _declined(merchant: Merchant, outcome: Outcome) -> outbox.Event:
    """`payout.declined` of a scheduled payout refused before anything moved (no payout_id)."""
    data: dict[str, Any] = {
        "payout_id": None,
        "merchant_id": str(merchant.id),
        "user_id": str(merchant.owner_id),
        "rail": "ach",
        "bank_account_id": str(merchant.payout_bank_account_id),
        "amount": outbox.amount(outcome.amount_minor, WALLET_CURRENCY),
        "currency": WALLET_CURRENCY,
        "return_code": None,
        "reason": outcome.detail,
    }
    return outbox.Event(
        "payout.declined",
        f"merchant/{merchant.id}",
        f"user/{merchant.owner_id}",
        datetime.now(UTC),
        data,
    )


def _count(report: RunReport, outcome: Outcome) -> None:
    if outcome.result == "paid":
        report.paid += 1
    elif outcome.result == "below_minimum":
        report.below_minimum += 1
    elif outcome.result == "refused":
        report.refused += 1
    else:
        report.left += 1


async def keep_paying_out(
    funding: Funding,
    gate_of: Callable[[], Gate],
    settings: Settings,
    interval_s: float = INTERVAL_S,
) -> None:
    """Every `interval_s`, from settings.payout_hour_utc (UTC) on, run the day's payouts until
    a run of this process finishes them (run_daily_payouts). `gate_of` gives the risk gate as
    the process has it then. A failed round is logged and the next one tries again."""
    done: date | None = None
    while True:
        await asyncio.sleep(interval_s)
        now = datetime.now(UTC)
        if now.date() == done or now.hour < settings.payout_hour_utc:
            continue
        try:
            report = await run_daily_payouts(
                funding, gate_of(), now.date(), settings.payout_min_minor
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise_if_cancelling()
            log.warning("daily payouts failed", error=str(error))
            continue
        if report.complete:
            done = report.day
        if report.paid or report.refused or report.left:
            log.info(
                "daily payouts run",
                day=report.day.isoformat(),
                paid=report.paid,
                refused=report.refused,
                left=report.left,
            )
