"""People's idempotency keys are kept `idempotency_retention_h` hours, then purged: a retry
within that window replays the first outcome; a retry after it is a new request (a new transfer).

Only the keys of people (client `user:<id>`) are purged. The service's own clients (funding,
risk, system, merchant:<id>) keep theirs: processes that run for days (an ACH return, a refund
resumed after a crash, a hold's expiry) find their outcome by key, and a key deleted under them
could move the money twice (migration 0033)."""

from __future__ import annotations

import asyncpg

from billfold.platform import retention

# The condition matches the partial index idempotency_keys_people_by_time word for word.
PURGE = """
DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM idempotency_keys
     WHERE client_id LIKE 'user:%' AND created_at < now() - make_interval(secs => $2)
     ORDER BY created_at LIMIT $1
       FOR UPDATE SKIP LOCKED))
"""


async def purge_idempotency_keys(pool: asyncpg.Pool, retention_h: float, batch: int) -> int:
    """Delete people's idempotency keys older than `retention_h` hours, `batch` at a time; how
    many. Takes no lock but the rows' own (a replay reading a key being purged sees it or not,
    and either answer is right at the window's edge)."""
    return await retention.purge(pool, "idempotency_keys", PURGE, retention_h * 3600.0, batch=batch)
