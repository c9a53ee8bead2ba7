"""Old months of the ledger leave the database (`billfold partitions detach`, migration 0035).

A month of `entries` goes only when every older month has gone and no hold of it is still
unresolved; before it is detached, each of its accounts' last place and balance are carried
forward into `ledger_archived`, from which reconcile, history and point-in-time balances go on.
A month of `transfers` goes after its entries (a transfer and its entries share their time, so
their months pair). A transfer of an archived month can no longer be reversed or resolved: the
engine does not find it (docs/partitions.md).
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from billfold.platform.partitions import BeforeDetach, Partition, add_months

OLDER_ENTRIES = "SELECT EXISTS (SELECT 1 FROM entries WHERE created_at < $1)"
UNRESOLVED_HOLDS = """
SELECT EXISTS (SELECT 1 FROM {name} e
                WHERE e.pending
                  AND NOT EXISTS (SELECT 1 FROM hold_resolutions r WHERE r.hold_id = e.transfer_id))
"""
CARRY_FORWARD = """
INSERT INTO ledger_archived (account_id, seq, balance_minor, through)
SELECT DISTINCT ON (account_id) account_id, account_seq, balance_after_minor, $1::timestamptz
  FROM {name}
 ORDER BY account_id, account_seq DESC
ON CONFLICT (account_id) DO UPDATE
   SET seq = excluded.seq, balance_minor = excluded.balance_minor, through = excluded.through
"""
ATTACHED = "SELECT to_regclass($1) IS NOT NULL"


def _bounds(part: Partition) -> tuple[datetime, datetime]:
    assert part.month is not None
    start = datetime(part.month.year, part.month.month, 1, tzinfo=UTC)
    end = add_months(part.month, 1)
    return start, datetime(end.year, end.month, 1, tzinfo=UTC)


async def before_entries_leave(conn: asyncpg.Connection, part: Partition) -> str | None:
    """Keep the month if an older one is still here or a hold of it is unresolved; else carry
    its accounts' positions forward."""
    start, end = _bounds(part)
    if await conn.fetchval(OLDER_ENTRIES, start):
        return "entries of older months are still attached"
    if await conn.fetchval(UNRESOLVED_HOLDS.format(name=part.name)):
        return "it holds holds not yet posted or voided"
    await conn.execute(CARRY_FORWARD.format(name=part.name), end)
    return None


async def before_transfers_leave(conn: asyncpg.Connection, part: Partition) -> str | None:
    """Keep the month while its entries are still attached."""
    assert part.month is not None
    if await conn.fetchval(ATTACHED, f"entries_p{part.month:%Y_%m}"):
        return "its entries are still attached"
    return None


DETACH_HOOKS: dict[str, BeforeDetach] = {
    "entries": before_entries_leave,
    "transfers": before_transfers_leave,
}
