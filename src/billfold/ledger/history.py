"""An account's entries as its owner's history reads them (wallet.history): newest first, paged
by keyset on the account's sequence numbers, a hold shown once (pending, cancelled, or as the
transfer that posted it), filtered in the statement that reads them.

The ledger owns this SQL. The caller names each row's counterparty from its own tables, joined
in the same statement on `page.other_account_id` (`Joined`), so that a page is one query.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

# An account's entries, newest first, below `upper` and above `lower` (sequence numbers), with
# the status of a hold and the account on the other side of each transfer.
_PAGE = """
WITH page AS (
    SELECT e.account_seq, e.transfer_id, e.amount_minor, e.currency, e.created_at,
           t.code, t.kind, t.metadata, t.pending_id,
           CASE WHEN t.kind <> 'hold' THEN 'COMPLETED'
                WHEN t.resolution IS NULL THEN 'PENDING'
                WHEN t.resolution = 'void' THEN 'CANCELLED'
           END AS status,
           other.account_id AS other_account_id
      FROM (
            -- The account's entries newest first: each month's index read backwards, merged,
            -- at most $14 of them (entries_page reads on if the page is still short). The
            -- bound lets the planner see that a page reads few of a big account's entries:
            -- without it, it may sort them all.
            SELECT e.account_id, e.account_seq, e.transfer_id, e.amount_minor, e.currency,
                   e.created_at
              FROM entries e
             WHERE e.account_id = $1
               AND e.account_seq < $2 AND e.account_seq > $3
               AND ($5::int IS NULL OR sign(e.amount_minor) = $5)
               AND ($6::bigint IS NULL OR abs(e.amount_minor) >= $6)
               AND ($7::bigint IS NULL OR abs(e.amount_minor) <= $7)
               AND ($10::bigint[] IS NULL OR e.account_seq = ANY ($10))
               -- The months of a time window only (pruned when the page is planned).
               AND ($12::timestamptz IS NULL OR e.created_at >= $12)
               AND ($13::timestamptz IS NULL OR e.created_at <= $13)
             ORDER BY e.account_seq DESC LIMIT $14
      ) e
      -- Its transfer, in the entry's month (the same created_at): a probe of one partition for
      -- each entry the page reads, and a hold's resolution. Every join is a lateral probe, so
      -- the page keeps the entries' order and stops at its limit.
      CROSS JOIN LATERAL (
            SELECT t.code, t.kind, t.metadata, t.pending_id, t.id,
                   CASE WHEN t.kind = 'hold'
                        THEN (SELECT r.kind FROM hold_resolutions r WHERE r.hold_id = t.id)
                   END AS resolution
              FROM transfers t
             WHERE t.id = e.transfer_id AND t.created_at = e.created_at
               AND ($12::timestamptz IS NULL OR t.created_at >= $12)
               AND ($13::timestamptz IS NULL OR t.created_at <= $13)
             OFFSET 0
      ) t
      LEFT JOIN LATERAL (
            SELECT o.account_id FROM entries o
             WHERE o.transfer_id = e.transfer_id AND o.created_at = e.created_at
               AND ($12::timestamptz IS NULL OR o.created_at >= $12)
               AND ($13::timestamptz IS NULL OR o.created_at <= $13)
               AND o.account_id <> e.account_id
             ORDER BY o.account_id LIMIT 1
      ) other ON true
     -- A posted hold shows as the transfer that posted it, not twice.
     WHERE (t.kind <> 'hold' OR t.resolution IS DISTINCT FROM 'post')
       AND ($4::text[] IS NULL OR t.code = ANY ($4))
       AND ($8::bigint IS NULL OR other.account_id = $8)
       AND ($9::text IS NULL OR (CASE WHEN t.kind <> 'hold' THEN 'COMPLETED'
                                      WHEN t.resolution IS NULL THEN 'PENDING'
                                      ELSE 'CANCELLED' END) = $9)
     ORDER BY e.account_seq DESC
     LIMIT $11
)
SELECT page.*{columns}, hold.metadata AS hold_metadata
  FROM page
{joins}  -- A posted hold's row is its post, which carries no metadata: the hold's says what it was.
  LEFT JOIN transfers hold ON hold.id = page.pending_id
 ORDER BY page.account_seq DESC
"""
# The place of the `$9`-th entry the page statement would scan from `upper` down: where the
# next statement starts when a page came back short only because its scan stopped.
_SCANNED_TO = """
SELECT e.account_seq FROM entries e
 WHERE e.account_id = $1
   AND e.account_seq < $2 AND e.account_seq > $3
   AND ($4::int IS NULL OR sign(e.amount_minor) = $4)
   AND ($5::bigint IS NULL OR abs(e.amount_minor) >= $5)
   AND ($6::bigint IS NULL OR abs(e.amount_minor) <= $6)
   AND ($7::bigint[] IS NULL OR e.account_seq = ANY ($7))
   AND ($8::timestamptz IS NULL OR e.created_at >= $8)
   AND ($10::timestamptz IS NULL OR e.created_at <= $10)
 ORDER BY e.account_seq DESC
 OFFSET $9 - 1 LIMIT 1
"""
# Entries a page statement scans, at most, for each row it is to return.
SCAN_PER_ROW = 20

# A search's page reads just the entries it found, by their keys, instead of filtering a scan.
_FOUND = (
    "AND ($10::bigint[] IS NULL OR e.account_seq = ANY ($10))",
    "AND e.account_seq = ANY ($10::bigint[])",
)

# The account's entries whose transfer's note matches a text query, or whose transfer also
# moved money of one of the given accounts: found through the index on note words and the
# entries of those accounts, newest first, below `upper` and above `lower`.
_SEARCH = """
SELECT e.account_seq
  FROM (
        SELECT t.id, t.created_at FROM transfers t
         WHERE $4::tsquery IS NOT NULL AND t.metadata ? 'note'
           AND to_tsvector('simple', t.metadata ->> 'note') @@ $4
           AND ($7::timestamptz IS NULL OR t.created_at >= $7)
           AND ($8::timestamptz IS NULL OR t.created_at <= $8)
        UNION
        SELECT o.transfer_id, o.created_at FROM entries o
         WHERE o.account_id = ANY ($5::bigint[])
           AND ($7::timestamptz IS NULL OR o.created_at >= $7)
           AND ($8::timestamptz IS NULL OR o.created_at <= $8)
       ) m
  JOIN entries e ON e.transfer_id = m.id AND e.created_at = m.created_at AND e.account_id = $1
 WHERE e.account_seq < $2 AND e.account_seq > $3
 ORDER BY e.account_seq DESC
 LIMIT $6
"""


# History's reads are planned for their own arguments (see entries_page).
CUSTOM_PLAN = "SET LOCAL plan_cache_mode = force_custom_plan"


@dataclass(frozen=True)
class Joined:
    """What a caller adds to each row of a page from its own tables: `columns` (each led by a
    comma) from `joins`, which join on `page.other_account_id`."""

    columns: str = ""
    joins: str = ""


@dataclass(frozen=True)
class EntryFilter:
    """Which of an account's entries a page shows; None: any."""

    codes: Sequence[str] | None = None  # transfer codes (p2p, add_funds, ...)
    sign: int | None = None  # 1: money in, -1: money out
    min_amount_minor: int | None = None
    max_amount_minor: int | None = None
    other_account_id: int | None = None  # the account on the other side
    status: str | None = None  # COMPLETED, PENDING or CANCELLED
    account_seqs: Sequence[int] | None = None  # only these entries (what a search found)
    # A time window the sequence bounds already keep to, given for the months outside it to
    # be pruned from the plan: entries at `since` or after, at `until` or before.
    since: datetime | None = None
    until: datetime | None = None


async def entries_page(
    conn: asyncpg.Connection,
    account_id: int,
    upper: int,
    lower: int,
    shown: EntryFilter,
    limit: int,
    joined: Joined = Joined(),
) -> list[asyncpg.Record]:
    """Up to `limit` of the account's entries with a sequence number below `upper` and above
    `lower` that `shown` lets through, newest first, with what `joined` adds (one statement,
    another only when the filters let few of the entries it scanned through):
    account_seq, transfer_id, amount_minor, currency, created_at, code, kind, metadata,
    pending_id, status, other_account_id, hold_metadata (a posted hold's own metadata).

    Planned for its own account every time: a generic plan (what a prepared statement turns to
    after five runs) cannot tell an account of a hundred entries, whose months are best read
    whole and sorted, from one of a hundred thousand, whose months' indexes must be merged."""
    async with conn.transaction():
        await conn.execute(CUSTOM_PLAN)
        rows: list[asyncpg.Record] = []
        while True:
            scan = max(limit - len(rows), 1) * SCAN_PER_ROW
            rows += await _page(
                conn, account_id, upper, lower, shown, limit - len(rows), joined, scan
            )
            if len(rows) >= limit:
                return rows
            # Short: the account has no more, or the filters let few of the scanned through.
            upper = await conn.fetchval(
                _SCANNED_TO,
                account_id,
                upper,
                lower,
                shown.sign,
                shown.min_amount_minor,
                shown.max_amount_minor,
                list(shown.account_seqs) if shown.account_seqs is not None else None,
                shown.since,
                scan,
                shown.until,
            )
            if upper is None:
                return rows


async def _page(
    conn: asyncpg.Connection,
    account_id: int,
    upper: int,
    lower: int,
    shown: EntryFilter,
    limit: int,
    joined: Joined,
    scan: int,
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        _statement(joined, shown.account_seqs is not None),
        account_id,
        upper,
        lower,
        list(shown.codes) if shown.codes else None,
        shown.sign,
        shown.min_amount_minor,
        shown.max_amount_minor,
        shown.other_account_id,
        shown.status,
        list(shown.account_seqs) if shown.account_seqs is not None else None,
        limit,
        shown.since,
        shown.until,
        scan,
    )
    return rows


@functools.cache
def _statement(joined: Joined, found: bool) -> str:
    page = _PAGE.format(columns=joined.columns, joins=joined.joins)
    return page.replace(*_FOUND) if found else page


async def search_entries(
    conn: asyncpg.Connection,
    account_id: int,
    upper: int,
    lower: int,
    words: str | None,
    other_account_ids: Sequence[int],
    limit: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[int]:
    """The sequence numbers of the account's entries between `lower` and `upper` (exclusive)
    whose transfer's note matches `words` (a tsquery), or whose transfer moved money of one of
    `other_account_ids`; newest first, at most `limit`. `since` and `until`: as EntryFilter's.
    Planned for its arguments every time, as entries_page."""
    async with conn.transaction():
        await conn.execute(CUSTOM_PLAN)
        rows = await conn.fetch(
            _SEARCH, account_id, upper, lower, words, list(other_account_ids), limit, since, until
        )
    return [row["account_seq"] for row in rows]


async def last_seq_before(
    conn: asyncpg.Connection, account_id: int, moment: datetime, inclusive: bool
) -> int:
    """The sequence number of the account's last entry before `moment` (or at it, if
    `inclusive`); 0 when there is none. The newest entry before it, the months after it pruned
    (migration 0035)."""
    value = await conn.fetchval(
        "SELECT ledger_last_seq_before($1, $2, $3)", account_id, moment, inclusive
    )
    return int(value)
