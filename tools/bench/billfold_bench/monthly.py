"""A generated ledger written month by month into the monthly partitions (`bench reconcile`,
`bench history`).

Transfer g (1..T) happens at `start + (g - 1) * (one year / T)`, so the transfers spread evenly
over twelve months and each month's transfers are one range of ids. Each month is written by its
own statements, its partitions made first (`partition_ensure`) so that no row lands in
`*_default`: the month's transfers, then its entries, numbered on from each account's version
and running on from its posted balance, and those two brought up to date in the same statement.
A month is one chunk of the work, so generation reports its progress as it goes and no single
statement sorts more than a month of entries.

Run with session_replication_role = replica: the ledger's triggers are off (no holds are
generated, so hold_resolutions stays empty and consistent).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from billfold_bench import say

YEAR = timedelta(days=365)

# $1, $2: the month's first and last transfer id (a margin either side: the WHERE keeps those
# of the month); $3: T; $4: the year's start; $5, $6: the month's bounds. `code` and `metadata`
# are the bench's own (`generate`).
TRANSFERS = """
INSERT INTO transfers (id, kind, code, amount_minor, currency, metadata, created_at)
SELECT g, 'transfer', {code}, 1 + g % 997, 'USD', {metadata}, at
  FROM (SELECT g, $4::timestamptz + ((g - 1) * interval '1 second' * (31536000.0 / $3)) AS at
          FROM generate_series($1::bigint, $2::bigint) g) t
 WHERE at >= $5 AND at < $6
"""

# The month's legs, two per transfer (`legs`: transfer_id, created_at, account_id,
# amount_minor, from the month's transfers, `month`), numbered and summed on from each account's
# version and posted balance; then those moved on by the month's entries.
ENTRIES = """
WITH month AS (SELECT * FROM transfers WHERE created_at >= $1 AND created_at < $2),
legs AS ({legs}),
written AS (
    INSERT INTO entries (account_id, account_seq, transfer_id, amount_minor, currency, pending,
                         balance_after_minor, created_at)
    SELECT l.account_id, a.version + row_number() OVER w, l.transfer_id, l.amount_minor, 'USD',
           false, a.posted_minor + sum(l.amount_minor) OVER (w ROWS UNBOUNDED PRECEDING),
           l.created_at
      FROM legs l JOIN accounts a ON a.id = l.account_id
    WINDOW w AS (PARTITION BY l.account_id ORDER BY l.transfer_id)
    RETURNING account_id, amount_minor
)
UPDATE accounts a SET posted_minor = a.posted_minor + s.total, version = a.version + s.n
  FROM (SELECT account_id, sum(amount_minor) AS total, count(*) AS n
          FROM written GROUP BY account_id) s
 WHERE a.id = s.account_id
"""


def months(start: datetime) -> list[tuple[datetime, datetime]]:
    """The twelve months from `start` (the first of a month, UTC), as [lower, upper)."""
    bounds = []
    first = start
    for _ in range(12):
        nxt = (first + timedelta(days=32)).replace(day=1)
        bounds.append((first, nxt))
        first = nxt
    return bounds


def year_start_before(now: datetime) -> datetime:
    """The first of the month eleven months before `now`'s: a year of months ending in now's."""
    year, month = now.year, now.month - 11
    if month < 1:
        year, month = year - 1, month + 12
    return datetime(year, month, 1, tzinfo=UTC)


async def generate(
    conn: asyncpg.Connection,
    *,
    transfers: int,
    start: datetime,
    code: str,
    metadata: str,
    legs: str,
    legs_args: tuple[object, ...] = (),
) -> None:
    """Write `transfers` transfers and their entries into the twelve months from `start`.
    `legs` is a SELECT of the month's legs from its transfers (`month`); its parameters are $1
    and $2 (the month's bounds), then `legs_args` as $3 on."""
    started = time.perf_counter()
    step = YEAR.total_seconds() / transfers
    total_entries = 0
    await conn.execute("SET session_replication_role = replica")
    await conn.execute("SET work_mem = '1GB'")
    try:
        for lower, upper in months(start):
            month_started = time.perf_counter()
            for parent in ("transfers", "entries"):
                await conn.execute("SELECT partition_ensure($1::regclass, $2)", parent, lower)
            first = max(1, math.floor((lower - start).total_seconds() / step) - 1)
            last = min(transfers, math.ceil((upper - start).total_seconds() / step) + 2)
            sql = TRANSFERS.format(code=code, metadata=metadata)
            status = await conn.execute(sql, first, last, transfers, start, lower, upper)
            written = int(status.split()[-1])
            sql = ENTRIES.format(legs=legs)
            await conn.execute(sql, lower, upper, *legs_args)
            total_entries += 2 * written
            now = time.perf_counter()
            say(
                f"  {lower:%Y-%m}: {written:,} transfers, {2 * written:,} entries in "
                f"{now - month_started:.0f}s ({total_entries:,} entries, {now - started:.0f}s)"
            )
        stray = await conn.fetchval(
            "SELECT (SELECT count(*) FROM transfers_default)"
            " + (SELECT count(*) FROM entries_default)"
        )
        say(f"  rows in transfers_default and entries_default: {stray}")
    finally:
        # The pool no longer resets sessions (see platform/db.py): undo these by hand.
        await conn.execute("RESET session_replication_role; RESET work_mem")
