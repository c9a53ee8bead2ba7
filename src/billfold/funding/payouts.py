"""A merchant's payouts as funding keeps them: movements of purpose 'payout', found and listed
by the merchant they are for (funding.actions.do_payout makes them; merchants.payouts shows
them). Funding knows a merchant by its id alone."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from billfold.funding.actions import payout_key
from billfold.funding.movements import CLIENT, movement_id
from billfold.funding.service import FUNDING_COLUMNS, Funding, FundingTransfer, Payee
from billfold.wallet.users import User

# Newest first; the hold's id (a payout's money is held before its row is written: migration
# 0028) breaks ties in time.
_PAGE = f"""
SELECT {FUNDING_COLUMNS} FROM funding_transfers
 WHERE merchant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, hold_id) < ($2, $3))
 ORDER BY created_at DESC, hold_id DESC LIMIT $4
"""


async def payouts_page(
    pool: asyncpg.Pool, merchant_id: uuid.UUID, after: tuple[datetime, int] | None, limit: int
) -> list[FundingTransfer]:
    """Up to `limit` of the merchant's payouts, newest first, from just after the position
    (created_at, hold id) `after` (None: the newest)."""
    moment, hold_id = after if after is not None else (None, None)
    rows = await pool.fetch(_PAGE, merchant_id, moment, hold_id, limit)
    return [FundingTransfer.from_row(row) for row in rows]


async def find_payout(
    pool: asyncpg.Pool, merchant_id: uuid.UUID, payout_id: uuid.UUID
) -> FundingTransfer | None:
    """The merchant's payout `payout_id`; None for any other movement."""
    row = await pool.fetchrow(
        f"SELECT {FUNDING_COLUMNS} FROM funding_transfers WHERE id = $1 AND merchant_id = $2",
        payout_id,
        merchant_id,
    )
    return FundingTransfer.from_row(row) if row is not None else None


async def held_under(funding: Funding, owner: User, payee: Payee, key: str) -> int | None:
    """The amount a payout asked under `key` has held in the ledger, if its hold was made
    (its process may have died before recording it): a retry must ask for that amount, which
    the ledger then answers with that hold, and the movement is recorded."""
    hold = await funding.ledger.stored_transfer(
        CLIENT, f"{movement_id(owner, payout_key(payee, key))}:hold"
    )
    return hold.amount_minor if hold is not None else None
