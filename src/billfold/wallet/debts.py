"""What a wallet owes: the claw-back of a returned deposit, and its repayment.

A deposit returned after the money was spent is clawed back from what the wallet holds; the rest
is recorded as a receivable (the user's receivable account goes negative), never as a negative
wallet. While anything is owed the wallet's outgoing money is blocked (`accounts.owes`, checked
by the ledger), and the next money that comes in repays it first: funding's add-funds and
returns, and the wallet's own P2P path, which repays before it refuses a transfer.

Collections for one user run one at a time (a transaction-scoped advisory lock on the user), so
two of them never split the same wallet balance between them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from billfold.events import outbox
from billfold.ledger.accounts import (
    CLEARING_OVERDRAFT_MINOR,
    find_account,
    get_account,
    open_account,
    set_owes,
)
from billfold.ledger.engine import Ledger
from billfold.ledger.errors import DebtOutstanding
from billfold.ledger.model import AccountKind, Leg
from billfold.platform.currency import WALLET_CURRENCY, format_amount
from billfold.wallet.events import debt_changed

# The ledger client claw-backs and repayments are made as: their idempotency keys are scoped by
# it, so it stays what it was when funding made them.
CLIENT = "funding"
CLAWBACK = "clawback"
REPAYMENT = "debt_repayment"


@dataclass(frozen=True)
class Clawback:
    taken_minor: int  # from the wallet
    owed_minor: int  # left as a receivable


def receivable_name(user_id: uuid.UUID) -> str:
    return f"receivable:{user_id}:{WALLET_CURRENCY}"


async def receivable_account(pool: asyncpg.Pool, user_id: uuid.UUID) -> int:
    """The user's receivable: negative by what they owe. Opened the first time it is needed."""
    account = await open_account(
        pool,
        kind=AccountKind.RECEIVABLE,
        owner=f"user:{user_id}",
        currency=WALLET_CURRENCY,
        name=receivable_name(user_id),
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
    key: str,
) -> Clawback:
    """Take `amount_minor` back to `source_account_id` (the clearing account the money came
    from): what the wallet holds first, the rest owed, told as `debt.opened` by the ledger's
    transaction that records it. Idempotent by `key`: a second call replays the first one's
    split (and tells nothing again).

    Locks: the user's debt lock (an advisory lock, for the transaction that reads what is
    owed and moves the money); the ledger locks the accounts in its own transaction."""
    receivable_id = await receivable_account(pool, user_id)
    async with pool.acquire() as conn, conn.transaction():
        await _lock_user(conn, user_id)
        owed_before = max(-(await get_account(pool, receivable_id)).posted_minor, 0)
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
        legs = [Leg(source_account_id, amount_minor, WALLET_CURRENCY)]
        if taken:
            legs.append(Leg(wallet_id, -taken, WALLET_CURRENCY))
        rows = []
        if amount_minor - taken:
            legs.append(Leg(receivable_id, taken - amount_minor, WALLET_CURRENCY))
            owed = amount_minor - taken
            opened = debt_changed("debt.opened", user_id, owed, owed_before + owed)
            rows.append(outbox.with_command(opened))
        await ledger.transfer(
            CLIENT, key, legs, code=CLAWBACK, metadata={"user_id": str(user_id)}, rows=rows
        )
        await _settle_flag(pool, wallet_id, receivable_id)
    return Clawback(taken, amount_minor - taken)


async def collect(pool: asyncpg.Pool, ledger: Ledger, user_id: uuid.UUID, wallet_id: int) -> int:
    """Repay what the user owes from what the wallet holds, told as `debt.recovered` by the
    ledger's transaction that repays it; return what is still owed.

    Locks: the user's debt lock (as claw_back's); the ledger's, in its own transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await _lock_user(conn, user_id)
        receivable = await find_account(conn, receivable_name(user_id))
        if receivable is None:
            return 0
        owed = -receivable.posted_minor
        wallet = await get_account(pool, wallet_id)
        repay = min(max(wallet.posted_minor - wallet.pending_debits_minor, 0), max(owed, 0))
        if repay:
            recovered = debt_changed("debt.recovered", user_id, repay, max(owed, 0) - repay)
            # The receivable's version names this state: a retry of the same repayment replays.
            await ledger.move(
                CLIENT,
                f"repay:{receivable.id}:{receivable.version}",
                debit_account_id=wallet_id,
                credit_account_id=receivable.id,
                amount_minor=repay,
                currency=WALLET_CURRENCY,
                code=REPAYMENT,
                metadata={"user_id": str(user_id)},
                rows=[outbox.with_command(recovered)],
            )
        return await _settle_flag(pool, wallet_id, receivable.id)


def debt_outstanding(owed_minor: int) -> DebtOutstanding:
    """The refusal of outgoing money while the user owes `owed_minor` (after `collect`); with
    nothing owed any more, it says the request may be sent again."""
    if not owed_minor:
        return DebtOutstanding(
            "what you owed is now repaid from money that came in; send again with a new "
            "Idempotency-Key",
            amount_owed=format_amount(0, WALLET_CURRENCY),
        )
    owed = format_amount(owed_minor, WALLET_CURRENCY)
    return DebtOutstanding(
        f"you owe {owed} from a returned deposit; outgoing money is blocked until it is repaid",
        amount_owed=owed,
    )


async def _settle_flag(pool: asyncpg.Pool, wallet_id: int, receivable_id: int) -> int:
    """Unblock the wallet once nothing is owed; return what is owed."""
    receivable = await get_account(pool, receivable_id)
    owed = max(-receivable.posted_minor, 0)
    await set_owes(pool, wallet_id, owed > 0)
    return owed


async def _lock_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"owes:{user_id}")


async def owed_minor(pool: asyncpg.Pool, user_id: uuid.UUID) -> int:
    """What the user owes (their receivable, negative by it), in minor units; 0 for none."""
    account = await find_account(pool, receivable_name(user_id))
    return max(0, -account.posted_minor) if account is not None else 0
