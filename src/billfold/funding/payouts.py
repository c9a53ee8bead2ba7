"""A merchant's payouts as funding keeps them: movements of purpose 'payout', found and listed
by the merchant they are for (funding.actions.do_payout makes them; merchants.payouts shows
them). Funding knows a merchant by its id alone."""

from __future__ import annotations

import uuid

import asyncpg

from billfold.funding.service import FUNDING_COLUMNS, FundingTransfer

# Newest first by the hold's id: a payout's money is held before its row is written (migration
# 0028), and the ledger's ids grow.
_PAGE = f"""
SELECT {FUNDING_COLUMNS} FROM funding_transfers
 WHERE merchant_id = $1 AND hold_id < $2
 ORDER BY hold_id DESC LIMIT $3
"""


async def payouts_page(
    pool: asyncpg.Pool, merchant_id: uuid.UUID, before: int, limit: int
) -> list[FundingTransfer]:
    """Up to `limit` of the merchant's payouts whose hold id is below `before`, newest first."""
    rows = await pool.fetch(_PAGE, merchant_id, before, limit)
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
