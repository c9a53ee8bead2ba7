"""The relay: publishes the outbox to the broker, at least once, in id order within a partition.

Relays share the outbox by partition (events_partitions, of the ordering key): to publish a
partition a relay takes a transaction-level advisory lock on it (a lease that ends with the
transaction, or with the relay's connection if it dies), reads its unpublished rows in id order,
publishes them, and marks them published in the same transaction. So two relays never publish a
row at once, a dead relay's rows are taken by the next, and a broker that fails leaves the rows
unpublished (the transaction rolls back) for the next try. An account's events are written under
its lock, so their ids follow their commits: id order is commit order per account.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import asyncpg
from prometheus_client import Counter, Histogram

from billfold.config import Settings
from billfold.events.brokers import BROKER_ERRORS, Broker, Message, body_of, connect
from billfold.events.outbox import cloudevent
from billfold.platform.tasks import raise_if_cancelling

log = logging.getLogger(__name__)

LOCK_SPACE = 0x0B0B  # the advisory locks' first key: the outbox's partitions
BATCH_MAX = 500
IDLE_S = 0.05
RETRY_MAX_S = 5.0
# A batch's publish gives up after this long: the relay holds its partition's lease and a
# database transaction meanwhile, and a broker client's own timeouts are per call.
PUBLISH_TIMEOUT_S = 30.0
PRUNE_EVERY_S = 60.0
PRUNE_MAX = 10_000

EVENTS_PUBLISHED = Counter(
    "billfold_events_published", "Outbox events the relays handed to the broker (at least once)."
)
RELAY_FAILURES = Counter(
    "billfold_events_relay_failures",
    "Relay rounds that failed (the broker or the database away) and were retried; the events "
    "wait in the outbox.",
)
PUBLISHED_AGE = Histogram(
    "billfold_events_publish_age_seconds",
    "How old the oldest event of each batch the relay published was (commit to broker, and "
    "how far the stream is behind while a broker was away).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0),
)

UNPUBLISHED = """
SELECT id, event_id, type, source, subject, ordering_key, time, data FROM outbox
 WHERE partition = $1 AND published_at IS NULL
 ORDER BY id LIMIT $2
"""
MARK = "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])"
PRUNE = """
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox
     WHERE time < now() - make_interval(secs => $1) AND published_at IS NOT NULL
     LIMIT $2)
"""
# Replay: published again by the relay, in id order, from a time on.
REPLAY = "UPDATE outbox SET published_at = NULL WHERE time >= $1 AND published_at IS NOT NULL"


class Relay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: Broker,
        *,
        partitions: int = 1,
        retention_h: float = 72.0,
        batch_max: int = BATCH_MAX,
    ) -> None:
        self._pool = pool
        self._broker = broker
        self._partitions = partitions
        self._retention_s = retention_h * 3600
        self._batch_max = batch_max
        self.published = 0

    async def publish_once(self) -> int:
        """Publish what is waiting in every partition no other relay holds; how many rows."""
        done = 0
        for partition in range(self._partitions):
            done += await self._publish_partition(partition)
        return done

    async def _publish_partition(self, partition: int) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            leased = await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock($1, $2)", LOCK_SPACE, partition
            )
            if not leased:
                return 0
            rows = await conn.fetch(UNPUBLISHED, partition, self._batch_max)
            if not rows:
                return 0
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await self._broker.publish(
                    [
                        Message(
                            str(r["event_id"]),
                            r["type"],
                            body_of(cloudevent(r)),
                            r["ordering_key"],
                        )
                        for r in rows
                    ]
                )
            await conn.execute(MARK, [r["id"] for r in rows])
        self.published += len(rows)
        EVENTS_PUBLISHED.inc(len(rows))
        PUBLISHED_AGE.observe(max(0.0, (datetime.now(UTC) - rows[0]["time"]).total_seconds()))
        return len(rows)

    async def prune(self) -> int:
        """Delete published rows past the retention period (a bounded number at a time)."""
        status = await self._pool.execute(PRUNE, self._retention_s, PRUNE_MAX)
        return int(status.split()[-1])

    async def run(self) -> None:
        """Publish until cancelled; a failing broker or database is retried with back-off."""
        delay = IDLE_S
        pruned_at = 0.0
        while True:
            raise_if_cancelling()
            try:
                if time.monotonic() - pruned_at > PRUNE_EVERY_S:
                    pruned_at = time.monotonic()
                    await self.prune()
                published = await self.publish_once()
            except (*BROKER_ERRORS, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                RELAY_FAILURES.inc()
                delay = min(delay * 2, RETRY_MAX_S)
                log.warning("event relay failed, retrying in %.2fs: %r", delay, error)
                await asyncio.sleep(delay)
                continue
            delay = IDLE_S
            if not published:
                await asyncio.sleep(IDLE_S)


async def replay(pool: asyncpg.Pool, since: datetime) -> int:
    """Have the relay publish again every event kept from `since` on; how many."""
    status = await pool.execute(REPLAY, since)
    return int(status.split()[-1])


async def serve(pool: asyncpg.Pool, settings: Settings, redis_url: str) -> None:
    """One process's relay, until cancelled: connects to the broker (retrying while it is
    down: the API goes on, the outbox keeps the events), publishes, and closes the broker."""
    delay = IDLE_S
    while True:
        raise_if_cancelling()
        try:
            broker = await connect(settings.events_url, redis_url)
            break
        except BROKER_ERRORS as error:
            log.warning("event broker unreachable, retrying in %.2fs: %r", delay, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
    relay = Relay(
        pool,
        broker,
        partitions=settings.events_partitions,
        retention_h=settings.events_retention_h,
    )
    try:
        await relay.run()
    finally:
        await broker.close()
