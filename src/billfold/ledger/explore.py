"""The ledger as operators explore it (the console's ledger explorer): a transfer with its
entries, and an account with its entries and running balance, newest first, paged by keyset on
the account's sequence numbers. Reads only."""

from __future__ import annotations

from typing import Any

import asyncpg

from billfold.ledger.errors import AccountNotFound, TransferNotFound
from billfold.platform import cursors

MAX_PAGE = 100
CURSOR_TAG = "L"
_TRANSFER = """
SELECT id, kind, code, pending_id, reverses_id, amount_minor, currency, expires_at, metadata,
       created_at,
       (SELECT transfer_id FROM hold_resolutions r WHERE r.hold_id = t.id) AS resolved_by
  FROM transfers t WHERE id = $1
"""
_TRANSFER_ENTRIES = """
SELECT e.account_id, e.account_seq, e.amount_minor, e.currency, e.pending,
       e.balance_after_minor, a.kind AS account_kind, a.owner, a.name
  FROM entries e JOIN accounts a ON a.id = e.account_id
 WHERE e.transfer_id = $1 AND e.created_at = $2
 ORDER BY e.amount_minor, e.account_id
"""
_ACCOUNT = """
SELECT id, kind, owner, name, currency, posted_minor, pending_debits_minor,
       pending_credits_minor, overdraft_limit_minor, version, created_at
  FROM accounts WHERE id = $1
"""
_ACCOUNT_ENTRIES = """
SELECT e.account_seq, e.transfer_id, e.amount_minor, e.pending, e.balance_after_minor,
       e.created_at, t.kind, t.code
  FROM (SELECT * FROM entries e
         WHERE e.account_id = $1 AND e.account_seq < $2
         ORDER BY e.account_seq DESC LIMIT $3) e
  -- Its transfer in the entry's month: one partition probed an entry (ledger.history).
  CROSS JOIN LATERAL (
        SELECT t.kind, t.code FROM transfers t
         WHERE t.id = e.transfer_id AND t.created_at = e.created_at OFFSET 0
  ) t
 ORDER BY e.account_seq DESC
"""


async def transfer_with_entries(pool: asyncpg.Pool, transfer_id: int) -> dict[str, Any]:
    """A transfer, the transfer that resolved it (a hold's post or void) and its entries, each
    with its account; 404 (TransferNotFound) for an id that is none."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(_TRANSFER, transfer_id)
        if row is None:
            raise TransferNotFound(f"transfer {transfer_id} does not exist")
        entries = await conn.fetch(_TRANSFER_ENTRIES, transfer_id, row["created_at"])
    return {
        **dict(row),
        "entries": [dict(e) for e in entries],
        "entries_sum_minor": sum(e["amount_minor"] for e in entries),
    }


async def account_entries(
    pool: asyncpg.Pool, account_id: int, cursor: str | None, limit: int = 50
) -> dict[str, Any]:
    """An account and one page of its entries, newest first, each with the balance it left
    (its running balance), and the cursor of the next page (None on the last); 404
    (AccountNotFound) for an id that is none, 422 for a cursor this did not give out."""
    limit = max(1, min(limit, MAX_PAGE))
    below = cursors.decode(CURSOR_TAG, cursor) if cursor else 2**62
    async with pool.acquire() as conn:
        account = await conn.fetchrow(_ACCOUNT, account_id)
        if account is None:
            raise AccountNotFound(f"account {account_id} does not exist")
        rows = await conn.fetch(_ACCOUNT_ENTRIES, account_id, below, limit + 1)
    page = [dict(r) for r in rows[:limit]]
    more = len(rows) > limit
    return {
        "account": dict(account),
        "entries": page,
        "next_cursor": cursors.encode(CURSOR_TAG, page[-1]["account_seq"]) if more else None,
    }
