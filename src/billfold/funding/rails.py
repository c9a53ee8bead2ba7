"""What the rails report back: an ACH entry settled or returned, a card charge charged back.

Each event is applied idempotently, whatever the order it arrives in. The ledger's holds are the
state machine: settling posts the hold and returning voids it, under keys derived from the
movement, so a duplicate replays and a late event finds the hold already resolved. A return that
arrives after settlement claws the money back instead. The movement's status is a projection
that only moves forward (pending -> settled -> returned).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import asyncpg

from billfold.funding.bank_accounts import unlink
from billfold.funding.events import tell
from billfold.funding.service import FUNDING_COLUMNS, OUTGOING, Funding, FundingTransfer
from billfold.ledger.errors import HoldNotPending
from billfold.ledger.model import Transfer
from billfold.platform.currency import format_amount
from billfold.risk.flags import raise_flag
from billfold.wallet import debts
from billfold.wallet.users import wallet_account

CLIENT = "funding"
_RETURN_CODE = re.compile(r"R[0-9]{2}")

# NACHA return codes and what Billfold does with each. Every return voids or claws back the
# money; some also unlink the bank account or flag the user for the risk engine.
INSUFFICIENT = {"R01", "R09"}
ACCOUNT_PROBLEMS = {"R02", "R03", "R04", "R13", "R14", "R15", "R16", "R20"}
UNAUTHORISED = {"R05", "R07", "R10", "R11", "R29", "R51"}
# Unauthorised-debit returns may come up to 60 days after settlement; the rest within two
# banking days (we allow five calendar days, for weekends and holidays).
LATE_RETURN_WINDOW = timedelta(days=60)
RETURN_WINDOW = timedelta(days=5)
CHARGEBACK = "chargeback"


@dataclass(frozen=True)
class ReturnAction:
    unlink: bool
    flag: bool
    window: timedelta


def return_action(code: str) -> ReturnAction:
    if code in UNAUTHORISED:
        return ReturnAction(unlink=True, flag=True, window=LATE_RETURN_WINDOW)
    if code in ACCOUNT_PROBLEMS:
        return ReturnAction(unlink=True, flag=False, window=RETURN_WINDOW)
    # R01/R09 and the rest (R06 ODFI request, R08 stop payment, ...): the money comes back, and
    # the account stays linked. A stop payment is a dispute signal, so it is flagged.
    return ReturnAction(unlink=False, flag=code == "R08", window=RETURN_WINDOW)


def valid_return_code(code: object) -> bool:
    return isinstance(code, str) and bool(_RETURN_CODE.fullmatch(code))


@dataclass(frozen=True)
class Outcome:
    result: str  # applied | ignored | refused
    detail: str


async def load(pool: asyncpg.Pool | asyncpg.Connection, funding_id: str) -> FundingTransfer | None:
    try:
        parsed = uuid.UUID(str(funding_id))
    except ValueError:
        return None
    row = await pool.fetchrow(
        f"SELECT {FUNDING_COLUMNS} FROM funding_transfers WHERE id = $1", parsed
    )
    return FundingTransfer.from_row(row) if row else None


def not_sent(ft: FundingTransfer) -> Outcome | None:
    """Refuses an event about a movement the risk engine holds or declined: it never reached
    the bank or the card processor, so nothing can have settled or come back."""
    if ft.risk_status is not None:
        return Outcome("refused", f"transfer {ft.id} is held by risk checks and was not sent")
    if ft.status == "declined":
        return Outcome("refused", f"transfer {ft.id} was declined and never sent")
    return None


async def settle(funding: Funding, ft: FundingTransfer) -> Outcome:
    if ft.rail != "ach":
        return Outcome("refused", f"transfer {ft.id} is not an ACH transfer")
    refused = not_sent(ft)
    if refused is not None:
        return refused
    if ft.status == "returned":
        return Outcome("ignored", f"transfer {ft.id} was returned ({ft.return_code}) already")
    wallet_id = await wallet_account(funding.pool, ft.user_id)
    if ft.hold_id is None and ft.purpose == "add_funds":
        from billfold.funding.movements import book_add_funds

        ft = await book_add_funds(funding, wallet_id, ft)
    if ft.hold_id is not None:
        try:
            posted = await funding.ledger.post(CLIENT, f"{ft.id}:post", ft.hold_id, code=ft.purpose)
        except HoldNotPending:
            return Outcome("ignored", f"transfer {ft.id} was returned already")
        await funding.pool.execute(
            "UPDATE funding_transfers SET posted_id = $2 WHERE id = $1", ft.id, posted.id
        )
    async with funding.pool.acquire() as conn, conn.transaction():
        changed = await conn.fetchval(
            """UPDATE funding_transfers SET status = 'settled', settled_at = now()
                WHERE id = $1 AND status = 'pending' RETURNING 1""",
            ft.id,
        )
        if changed:
            await tell(conn, "settled", ft)
    if ft.purpose == "add_funds":
        await debts.collect(funding.pool, funding.ledger, ft.user_id, wallet_id)
    if not changed:
        return Outcome("ignored", f"transfer {ft.id} was settled already")
    return Outcome("applied", f"transfer {ft.id} settled")


async def return_(
    funding: Funding,
    ft: FundingTransfer,
    code: str,
    now: datetime | None = None,
    wallet_id: int | None = None,
    reason: str | None = None,
) -> Outcome:
    """Undo a movement the bank returned (or a card add-funds charged back, for `reason`):
    void what is pending, claw back or reverse what was settled, then take the return code's
    action."""
    if ft.status == "returned":
        return Outcome("ignored", f"transfer {ft.id} was returned already ({ft.return_code})")
    refused = not_sent(ft)
    if refused is not None:
        return refused
    action = return_action(code) if ft.rail == "ach" else ReturnAction(False, True, timedelta(0))
    now = now or datetime.now(UTC)
    settled_at = ft.settled_at if ft.status == "settled" and ft.rail == "ach" else None
    if settled_at is not None and now - settled_at > action.window:
        return Outcome("refused", f"return {code} for transfer {ft.id} is past its window")
    wallet_id = wallet_id or await wallet_account(funding.pool, ft.user_id)
    clawed = owed = 0
    if ft.purpose == "add_funds":
        clawed, owed = await _undo_add_funds(funding, ft, wallet_id)
    elif ft.purpose in OUTGOING:
        await _undo_cash_out(funding, ft)
    else:
        await _undo_micro_deposit(funding, ft)
    async with funding.pool.acquire() as conn, conn.transaction():
        changed = await conn.fetchval(
            """UPDATE funding_transfers
                  SET status = 'returned', return_code = $2, returned_at = now(),
                      clawed_back_minor = $3, owed_minor = $4
                WHERE id = $1 AND status <> 'returned' RETURNING 1""",
            ft.id,
            code,
            clawed,
            owed,
        )
        if changed:
            await tell(conn, "returned", replace(ft, return_code=code), reason)
    if not changed:
        return Outcome("ignored", f"transfer {ft.id} was returned already")
    await _take_action(funding.pool, ft, code, action)
    detail = f"transfer {ft.id} returned ({code})"
    if owed:
        detail += f"; {format_amount(owed, ft.currency)} {ft.currency} owed"
    return Outcome("applied", detail)


async def _undo_add_funds(funding: Funding, ft: FundingTransfer, wallet_id: int) -> tuple[int, int]:
    """Void the pending part if it still is; claw back whatever reached the wallet."""
    to_claw = ft.advance_minor if ft.rail == "ach" else ft.amount_minor + ft.fee_minor
    if ft.hold_id is not None:
        try:
            await funding.ledger.void(CLIENT, f"{ft.id}:void", ft.hold_id, code="ach_return")
        except HoldNotPending:
            # Posted (settled) first, perhaps a moment ago: all of it reached the wallet.
            to_claw = ft.amount_minor
    if not to_claw:
        return 0, 0
    source = funding.accounts.bank_clearing if ft.rail == "ach" else funding.accounts.card_clearing
    result = await debts.claw_back(
        funding.pool,
        funding.ledger,
        user_id=ft.user_id,
        wallet_id=wallet_id,
        source_account_id=source,
        amount_minor=to_claw,
        key=f"{ft.id}:clawback",
    )
    return result.taken_minor, result.owed_minor


async def _undo_cash_out(funding: Funding, ft: FundingTransfer) -> Transfer | None:
    """The money never reached the bank account: release the hold, or put it back, in the
    account it left (a payout's merchant account, a cash-out's wallet)."""
    if ft.hold_id is None:
        return None
    try:
        return await funding.ledger.void(CLIENT, f"{ft.id}:void", ft.hold_id, code="ach_return")
    except HoldNotPending:
        posted = await funding.ledger.stored_transfer(CLIENT, f"{ft.id}:post")
        assert posted is not None  # the hold was not pending: settling posted it
        return await funding.ledger.reverse(CLIENT, f"{ft.id}:reverse", posted.id, code="reversal")


async def _undo_micro_deposit(funding: Funding, ft: FundingTransfer) -> None:
    """A returned micro-deposit's money is back at our bank: reverse its share of the booking."""
    booked = await funding.ledger.stored_transfer(CLIENT, f"micro:{ft.bank_account_id}")
    if booked is not None:
        await funding.ledger.reverse(
            CLIENT, f"{ft.id}:reverse", booked.id, amount_minor=ft.amount_minor, code="reversal"
        )


async def _take_action(
    pool: asyncpg.Pool, ft: FundingTransfer, code: str, action: ReturnAction
) -> None:
    if action.unlink and ft.bank_account_id is not None:
        await unlink(pool, ft.bank_account_id, f"return {code}")
    if action.flag:
        await raise_flag(
            pool,
            ft.user_id,
            "unauthorised_return" if code != CHARGEBACK else "chargeback",
            {"funding_id": str(ft.id), "return_code": code},
        )
