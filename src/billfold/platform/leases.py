"""Work one node of the fleet does at a time: a PostgreSQL session advisory lock, tried, held
on one pooled connection for the length of a round of work, and given up at its end (or with
the connection, if the process dies).

Every node runs the same background loops (the hold sweeper, the refund resumer, funding
recovery). Their work is idempotent by ledger keys, so two nodes doing it at once moved no money
twice, but they did the same work twice: each read the same rows and sent the same commands,
one executing and the others replaying. A round taken under a lease is done by one node; the
others skip that round and find nothing left at their next (decision record 151).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

LOCK_SPACE = 0x0B0D  # the advisory locks' first key: the fleet's singleton rounds (below)
# The second key: which round.
HOLD_SWEEP = 1
REFUND_RESUME = 2
FUNDING_RECOVERY = 3
SANDBOX_SETTLE = 4


@contextlib.asynccontextmanager
async def lease(pool: asyncpg.Pool, round_id: int) -> AsyncIterator[bool]:
    """Whether this node holds the round's lease (True) or another node does (False), for the
    length of the block. The lease is a session lock on a connection taken from `pool` and kept
    until the block ends; the pool's reset would release it too."""
    async with pool.acquire() as conn:
        taken = await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", LOCK_SPACE, round_id)
        held = bool(taken)
        try:
            yield held
        finally:
            if held and not conn.is_closed():
                with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    await conn.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_SPACE, round_id)
