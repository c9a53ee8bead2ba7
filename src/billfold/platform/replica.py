"""Reads that may be a little stale, on a streaming replica, with read-your-writes for each
account's own movements.

After each ledger batch commits, the primary's WAL position is remembered in Redis for every
account the batch changed (`remember`, the ledger's after_commit_position hook), before the
callers get their answers. A read of an account (`run`) goes to the replica once the replica
has replayed up to that account's position, waiting for it a bounded time (replica_wait_ms),
else to the primary; an account with no remembered position goes straight to the replica. A
replica that refuses a connection or a query is left alone for a few seconds and the primary
answers. Without a replica (DATABASE_REPLICA_URL unset) every read is the primary's.

Only reads that decide nothing go through here (decision record 150): a person's history and
its searches (read-your-writes), and an operator's AML candidates and daily charts (as the
replica stands). Every read that a write depends on stays on the primary, in the write's
transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec, TypeVar

import asyncpg
from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError

from billfold.config import Settings
from billfold.platform.logging import get_logger

log = get_logger("billfold.platform.replica")
P = ParamSpec("P")
T = TypeVar("T")

# The replica is not asked again for this long after it failed.
DOWN_FOR_S = 5.0
# A statement the replica does not answer within this is a failure (its pool's command_timeout):
# a replica that hangs (stopped, its host unreachable) must not hang the reads sent to it.
REPLICA_COMMAND_TIMEOUT_S = 2.0
# A wait for the replica's position that overran its bound by this much was a replica that did
# not answer, not one that was behind: it is left alone as a failed one is.
UNANSWERED_S = 0.5
POLL_S = 0.005  # how often a read waiting for the replica asks how far it has replayed
# A replica's replay position (NULL on a server not in recovery: a promoted replica, which is
# never behind itself).
REPLAYED = "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint"
REPLICA_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
# KEYS: accounts' position keys; ARGV[1]: the position, ARGV[2]: TTL in ms. Keeps the larger:
# two nodes' batches on one account may tell Redis in either order.
_REMEMBER = """
for _, key in ipairs(KEYS) do
  local known = tonumber(redis.call('GET', key) or '0')
  if known < tonumber(ARGV[1]) then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    redis.call('PEXPIRE', key, ARGV[2])
  end
end
return 0
"""

READS = Counter(
    "billfold_replica_reads",
    "Reads that may go to the replica, by where they went: replica (at once), replica_waited "
    "(after waiting for the replica to reach the account's last write), primary_behind (the "
    "replica did not get there in time), primary_down (the replica failing or left alone), "
    "primary_unknown (Redis could not say where the account's last write is).",
    ["served_by"],
)
WAITED = Histogram(
    "billfold_replica_wait_seconds",
    "How long reads waited for the replica to replay an account's last write.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
BEHIND = Gauge(
    "billfold_replica_behind_bytes",
    "How far (WAL bytes) the replica was behind an account's last write when a read last "
    "asked; 0 when it had reached it.",
)


class Reads:
    """Where reads that may be stale run: see the module's docstring."""

    def __init__(
        self,
        primary: asyncpg.Pool,
        replica: asyncpg.Pool | None,
        redis: Redis,
        *,
        wait_ms: float = 100.0,
        remember_s: float = 600.0,
    ) -> None:
        self.primary, self.replica = primary, replica
        self._redis = redis
        self._wait_s = wait_ms / 1000
        self._remember_ms = int(remember_s * 1000)
        self._remember = redis.register_script(_REMEMBER)
        self.left_alone_until = 0.0

    @classmethod
    def of(
        cls, primary: asyncpg.Pool, replica: asyncpg.Pool | None, redis: Redis, settings: Settings
    ) -> Reads:
        wait_ms, remember_s = settings.replica_wait_ms, settings.replica_remember_s
        return cls(primary, replica, redis, wait_ms=wait_ms, remember_s=remember_s)

    async def remember(self, account_ids: list[int], position: int) -> None:
        """That these accounts' last writes end at or before `position` (the primary's WAL,
        read after their commit). Redis trouble is raised: the ledger's hook logs it."""
        if self.replica is None or not account_ids:
            return
        keys = [_key(a) for a in account_ids]
        await self._remember(keys=keys, args=[position, self._remember_ms])

    async def run(
        self,
        account_id: int | None,
        read: Callable[Concatenate[asyncpg.Pool, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`read(pool, *args)` on the replica when it holds the account's last write, else on
        the primary. Account None: a read of no one's own movements (an operator's lists), on
        the replica as it stands."""
        if self.replica is None:
            return await read(self.primary, *args, **kwargs)
        served_by = await self._choose(account_id)
        if served_by.startswith("replica"):
            try:
                found = await read(self.replica, *args, **kwargs)
            except REPLICA_ERRORS as error:
                self._left_alone(error)
                served_by = "primary_down"
            else:
                READS.labels(served_by).inc()
                return found
        READS.labels(served_by).inc()
        return await read(self.primary, *args, **kwargs)

    async def _choose(self, account_id: int | None) -> str:
        """Where a read of the account goes (READS' labels), waiting for the replica a bounded
        time when it is behind the account's last write."""
        assert self.replica is not None
        if time.monotonic() < self.left_alone_until:
            return "primary_down"
        if account_id is None:
            return "replica"
        try:
            remembered = await self._redis.get(_key(account_id))
        except RedisError:
            return "primary_unknown"
        needed = int(remembered or 0)
        if not needed:
            return "replica"
        started, polls = time.monotonic(), 0
        try:
            async with asyncio.timeout(self._wait_s):
                while True:
                    replayed = await self.replica.fetchval(REPLAYED)
                    if replayed is None or replayed >= needed:
                        BEHIND.set(0)
                        WAITED.observe(time.monotonic() - started)
                        return "replica_waited" if polls else "replica"
                    BEHIND.set(needed - replayed)
                    polls += 1
                    await asyncio.sleep(POLL_S)
        except TimeoutError:
            if time.monotonic() - started > self._wait_s + UNANSWERED_S:
                self._left_alone(TimeoutError("the replica did not answer"))
                return "primary_down"
            return "primary_behind"
        except REPLICA_ERRORS as error:
            self._left_alone(error)
            return "primary_down"

    def _left_alone(self, error: BaseException) -> None:
        self.left_alone_until = time.monotonic() + DOWN_FOR_S
        log.warning("replica unavailable; reading the primary", error=repr(error)[:200])


def _key(account_id: int) -> str:
    return f"replica:written:{account_id}"
