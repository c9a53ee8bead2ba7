"""Money a user owes: the claw-back of a returned deposit, and its repayment.

A deposit returned after the money was spent is clawed back from what the wallet holds; the rest
is recorded as a receivable (the user's receivable account goes negative), never as a negative
wallet. While anything is owed the wallet's outgoing money is blocked (`accounts.owes`, checked
by the ledger), and the next money that comes in repays it first.

Collections for one user run one at a time (a transaction-scoped advisory lock on the user), so
two of them never split the same wallet balance between them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from billfold.ledger.accounts import (
    CLEARING_OVERDRAFT_MINOR,
    get_account,
    open_account,
    set_owes,
)
from billfold.ledger.engine import Ledger
from billfold.ledger.errors import DebtOutstanding
from billfold.ledger.model import AccountKind, Leg
from billfold.wallet.money import format_amount

CLIENT = "funding"
CLAWBACK = "clawback"
REPAYMENT = "debt_repayment"


@dataclass(frozen=True)
class Clawback:
    taken_minor: int  # from the wallet
    owed_minor: int  # left as a receivable


async def receivable_account(pool: asyncpg.Pool, user_id: uuid.UUID, currency: str) -> int:
    """The user's receivable: negative by what they owe. Opened the first time it is needed."""
    account = await open_account(
        pool,
        kind=AccountKind.RECEIVABLE,
        owner=f"user:{user_id}",
        currency=currency,
        name=f"receivable:{user_id}:{currency}",
        overdraft_limit_minor=CLEARING_OVERDRAFT_MINOR,
    )
    return account.id


async def claw_back(
    pool: asyncpg.Pool,
    ledger: Ledger,
    *,
    user_id: uuid.UUID,
    wallet_id: int,
    source_account_id: int,
    amount_minor: int,
    currency: str,
    key: str,
) -> Clawback:
    """Take `amount_minor` back to `source_account_id` (the clearing account the money came
    from): what the wallet holds first, the rest owed. Idempotent by `key`: a second call
    replays the first one's split."""
    receivable_id = await receivable_account(pool, user_id, currency)
    async with pool.acquire() as conn, conn.transaction():
        await _lock_user(conn, user_id)
        # A retry asks the ledger for exactly the transfer the first try made.
        stored = await ledger.stored_transfer(CLIENT, key)
        if stored is None:
            # Block outgoing money first (committed at once, outside this transaction, which
            # only holds the user's lock): from here on the wallet can only grow, so the amount
            # read below is there when the claw-back is applied.
            await set_owes(pool, wallet_id, True)
        wallet = await get_account(pool, wallet_id)
        available = max(wallet.posted_minor - wallet.pending_debits_minor, 0)
        taken = min(available, amount_minor)
        if stored is not None:
            entry = stored.entry_for(wallet_id)
            taken = -entry.amount_minor if entry is not None else 0
        legs = [Leg(source_account_id, amount_minor, currency)]
        if taken:
            legs.append(Leg(wallet_id, -taken, currency))
        if amount_minor - taken:
            legs.append(Leg(receivable_id, taken - amount_minor, currency))
        await ledger.transfer(CLIENT, key, legs, code=CLAWBACK, metadata={"user_id": str(user_id)})
        await _settle_flag(pool, wallet_id, receivable_id)
    return Clawback(taken, amount_minor - taken)


async def collect(
    pool: asyncpg.Pool, ledger: Ledger, user_id: uuid.UUID, wallet_id: int, currency: str
) -> int:
    """Repay what the user owes from what the wallet holds; return what is still owed."""
    async with pool.acquire() as conn, conn.transaction():
        await _lock_user(conn, user_id)
        receivable = await conn.fetchrow(_RECEIVABLE, f"receivable:{user_id}:{currency}")
        if receivable is None:
            return 0
        owed = -receivable["posted_minor"]
        wallet = await get_account(pool, wallet_id)
        repay = min(max(wallet.posted_minor - wallet.pending_debits_minor, 0), max(owed, 0))
        if repay:
            # The receivable's version names this state: a retry of the same repayment replays.
            await ledger.move(
                CLIENT,
                f"repay:{receivable['id']}:{receivable['version']}",
                debit_account_id=wallet_id,
                credit_account_id=receivable["id"],
                amount_minor=repay,
                currency=currency,
                code=REPAYMENT,
                metadata={"user_id": str(user_id)},
            )
        return await _settle_flag(pool, wallet_id, receivable["id"])


def debt_outstanding(owed_minor: int, currency: str) -> DebtOutstanding:
    """The refusal of outgoing money while the user owes `owed_minor` (after `collect`); with
    nothing owed any more, it says the request may be sent again."""
    if not owed_minor:
        return DebtOutstanding(
            "what you owed is now repaid from money that came in; send again with a new "
            "Idempotency-Key",
            amount_owed=format_amount(0, currency),
        )
    return DebtOutstanding(
        f"you owe {format_amount(owed_minor, currency)} from a returned deposit; outgoing money "
        "is blocked until it is repaid",
        amount_owed=format_amount(owed_minor, currency),
    )


async def _settle_flag(pool: asyncpg.Pool, wallet_id: int, receivable_id: int) -> int:
    """Unblock the wallet once nothing is owed; return what is owed."""
    receivable = await get_account(pool, receivable_id)
    owed = max(-receivable.posted_minor, 0)
    await set_owes(pool, wallet_id, owed > 0)
    return owed


async def _lock_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"owes:{user_id}")


_RECEIVABLE = "SELECT id, posted_minor, version FROM accounts WHERE name = $1"
