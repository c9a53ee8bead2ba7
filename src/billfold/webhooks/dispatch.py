"""The dispatcher: one a process, it POSTs the deliveries that are due and records each attempt.

It takes due deliveries with `FOR UPDATE SKIP LOCKED`, moving each one's next attempt to the end
of a lease (the attempt's time limit and a margin) in that short transaction, so that no other
dispatcher takes it meanwhile and one that dies leaves it due again once the lease ends: every
event reaches its endpoint at least once (receivers drop a second copy by `webhook-id`, the
event's id). No transaction is open while a receiver is waited for.

An attempt is the CloudEvent JSON, signed (webhooks.signing), sent with httpx to the address
that was checked (webhooks.urls), with no redirect followed, given up after the time limit;
only a 2xx is a success. A failed delivery is due again after a random wait between zero and
webhooks_retry_first_s doubled with each failure, at most webhooks_retry_max_s ("full jitter":
receivers that failed together are not all retried together). After webhooks_retry_window_s
from its first try (or MAX_ATTEMPTS) it is given up; if nothing reached the endpoint in that
whole window, the endpoint is disabled and `webhook.endpoint.disabled` written to the outbox in
the same transaction (the owner is told).

The money path never waits for any of this: the dispatcher is a task of its own on a pool of its
own, with at most webhooks_concurrency attempts at once, each bounded in time.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from prometheus_client import Counter, Histogram

from billfold.events import outbox
from billfold.platform.crypto import DecryptionFailed
from billfold.platform.logging import get_logger
from billfold.platform.tasks import cancelling
from billfold.webhooks import signing
from billfold.webhooks.service import Webhooks
from billfold.webhooks.urls import AddressRefused, route, without_query

log = get_logger("billfold.webhooks")

# The dispatcher's own connections: claims and records are short, and never the money path's.
CONNECTIONS = 2
LEASE_MARGIN_S = 30.0
MAX_ATTEMPTS = 100
ERROR_CHARS = 200
USER_AGENT = "Billfold-Webhooks/1"
PRUNE_EVERY_S = 300.0
RETENTION = timedelta(days=30)
PRUNE_MAX = 10_000
# A month of deliveries, and of their attempts, is detached (platform.partitions) only once
# none of its deliveries is still to be sent.
DETACH_GUARDS = {
    "webhook_attempts": """(delivery_id, event_time) IN
        (SELECT id, event_time FROM webhook_deliveries WHERE status = 'pending')""",
    "webhook_deliveries": "status = 'pending'",
}
DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
# The jitter's own generator: the global one's state is the program's (and its tests') to own.
_jitter = random.Random()

ATTEMPTS = Counter(
    "billfold_webhook_attempts",
    "Webhook delivery attempts, by outcome: delivered (a 2xx), retrying (failed, due again "
    "later), gave_up (failed past the retry window).",
    ["outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "billfold_webhook_attempt_seconds",
    "Time a webhook delivery attempt took, to the receiver's status or the error.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
ENDPOINTS_DISABLED = Counter(
    "billfold_webhook_endpoints_disabled",
    "Webhook endpoints disabled after failing every delivery for the whole retry window.",
)

CLAIM = """
WITH due AS (
    SELECT d.id, d.event_time FROM webhook_deliveries d
      JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled
     WHERE d.status = 'pending' AND d.next_attempt_at <= now()
     ORDER BY d.next_attempt_at LIMIT $1
       FOR UPDATE OF d SKIP LOCKED)
UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $2)
  FROM due, webhook_endpoints e
 WHERE d.id = due.id AND d.event_time = due.event_time AND e.id = d.endpoint_id
RETURNING d.id AS delivery_id, d.event_time, d.event_id, d.body, e.id, e.url, e.secret_enc,
          e.secret_dek, e.key_id, e.previous_enc, e.previous_dek, e.previous_key_id,
          e.previous_expires_at
"""
# A delivery is made after its event: the bound on the event's time is implied (give or take
# the clocks' skew), and keeps the months of the retention period out of the plan.
PRUNE = """
DELETE FROM webhook_deliveries WHERE (id, event_time) IN (
    SELECT id, event_time FROM webhook_deliveries
     WHERE created_at < now() - $1::interval AND event_time < now() - $1::interval
       AND status <> 'pending' LIMIT $2)
"""


@dataclass(frozen=True)
class Due:
    delivery_id: int
    event_time: datetime  # the delivery's key is (delivery_id, event_time): one month read
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    url: str
    body: str
    secrets: list[str]  # empty if they cannot be decrypted (the attempt fails, saying so)


@dataclass(frozen=True)
class Attempt:
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def backoff_s(failures: int, first_s: float, max_s: float) -> float:
    """The wait before the next try after `failures` failures in a row: full jitter."""
    ceiling = min(max_s, first_s * 2 ** min(failures - 1, 62))
    return _jitter.uniform(0, ceiling)


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, hooks: Webhooks) -> None:
        self._pool = pool
        self._hooks = hooks
        settings = hooks.settings
        self._concurrency = settings.webhooks_concurrency
        self._timeout_s = settings.webhooks_timeout_s
        self._allow_local = settings.webhooks_local_allowed
        self._in_flight: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Deliver until cancelled; attempts under way are cancelled with it (their leases
        end, and another dispatcher sends them again)."""
        limits = httpx.Limits(max_connections=self._concurrency, max_keepalive_connections=8)
        async with httpx.AsyncClient(
            timeout=self._timeout_s, follow_redirects=False, trust_env=False, limits=limits
        ) as client:
            try:
                await self._loop(client)
            finally:
                for task in self._in_flight:
                    task.cancel()
                await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _loop(self, client: httpx.AsyncClient) -> None:
        poll_s = self._hooks.settings.webhooks_poll_s
        pruned_at = time.monotonic()
        # Checked, not only awaited: a library's wait_for may drop a cancel on Python 3.11.
        while not cancelling():
            free = self._concurrency - len(self._in_flight)
            claimed: list[Due] = []
            try:
                if free > 0:
                    claimed = await self.claim(free)
                if time.monotonic() - pruned_at > PRUNE_EVERY_S:
                    pruned_at = time.monotonic()
                    await self._pool.execute(PRUNE, RETENTION, PRUNE_MAX)
            except DB_ERRORS as error:
                log.warning("webhook dispatcher: database failed, retrying", error=repr(error))
            for due in claimed:
                task = asyncio.create_task(self.deliver(client, due), name="webhook-attempt")
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            if claimed and len(claimed) == free:
                continue  # more may be due: claim again once a slot is free
            if self._in_flight and len(self._in_flight) >= self._concurrency:
                await asyncio.wait(
                    self._in_flight, timeout=poll_s, return_when=asyncio.FIRST_COMPLETED
                )
            else:
                await asyncio.sleep(poll_s)
        raise asyncio.CancelledError

    async def claim(self, count: int) -> list[Due]:
        """Take up to `count` due deliveries for this dispatcher, leased."""
        lease_s = self._timeout_s + LEASE_MARGIN_S
        rows = await self._pool.fetch(CLAIM, count, lease_s)
        now = datetime.now(UTC)
        found = []
        for row in rows:
            try:
                keys = signing.signing_secrets(self._hooks.keys, row, now)
            except DecryptionFailed as error:
                log.error(
                    "webhook secret does not decrypt", endpoint_id=str(row["id"]), error=str(error)
                )
                keys = []
            found.append(
                Due(
                    row["delivery_id"],
                    row["event_time"],
                    row["id"],
                    row["event_id"],
                    row["url"],
                    row["body"],
                    keys,
                )
            )
        return found

    async def deliver(self, client: httpx.AsyncClient, due: Due) -> None:
        """One attempt and its record. If the record cannot be written, the lease ends and the
        delivery is tried again."""
        attempt = await self.attempt(client, due)
        try:
            await self.record(due, attempt)
        except DB_ERRORS as error:
            log.warning(
                "webhook attempt not recorded", delivery_id=due.delivery_id, error=repr(error)
            )

    async def attempt(self, client: httpx.AsyncClient, due: Due) -> Attempt:
        at = datetime.now(UTC)
        started = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self._timeout_s):
                status_code = await self._post(client, due, at)
        except TimeoutError:
            error = f"no answer within {self._timeout_s:g} s"
        except AddressRefused as refused:
            error = str(refused)
        except httpx.HTTPError as failed:
            error = f"{type(failed).__name__}: {failed}" if str(failed) else type(failed).__name__
        except (OSError, ValueError) as failed:
            error = f"{type(failed).__name__}: {failed}"
        duration_s = time.perf_counter() - started
        ATTEMPT_SECONDS.observe(duration_s)
        return Attempt(at, status_code, error and error[:ERROR_CHARS], round(duration_s * 1000))

    async def _post(self, client: httpx.AsyncClient, due: Due, at: datetime) -> int:
        if not due.secrets:
            raise ValueError("the endpoint's signing secret cannot be decrypted")
        way = await route(due.url, self._allow_local)
        headers = {
            **way.headers,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **signing.signed_headers(str(due.event_id), due.body, due.secrets, at),
        }
        # Streamed, and closed unread: a receiver's answer is its status, whatever its size.
        async with client.stream(
            "POST", way.url, content=due.body.encode(), headers=headers, extensions=way.extensions
        ) as response:
            return response.status_code

    async def record(self, due: Due, attempt: Attempt) -> None:
        """Record the attempt and what follows it, in one transaction. Locks: the endpoint's row,
        then the delivery's (as every path that takes both)."""
        settings = self._hooks.settings
        async with self._pool.acquire() as conn, conn.transaction():
            endpoint = await conn.fetchrow(
                """SELECT user_id, url, enabled, last_success_at, failing_since
                     FROM webhook_endpoints WHERE id = $1 FOR NO KEY UPDATE""",
                due.endpoint_id,
            )
            delivery = await conn.fetchrow(
                """SELECT status, attempts, retry_from FROM webhook_deliveries
                    WHERE id = $1 AND event_time = $2 FOR UPDATE""",
                due.delivery_id,
                due.event_time,
            )
            if endpoint is None or delivery is None:
                return  # deleted meanwhile
            # The failures in a row of this retry window (a resend starts a new one) before it.
            earlier = await conn.fetchval(
                """SELECT count(*) FROM webhook_attempts
                    WHERE delivery_id = $1 AND event_time = $2 AND attempted_at >= $3""",
                due.delivery_id,
                due.event_time,
                delivery["retry_from"],
            )
            await conn.execute(
                """INSERT INTO webhook_attempts (delivery_id, event_time, attempted_at,
                       status_code, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6)""",
                due.delivery_id,
                due.event_time,
                attempt.at,
                attempt.status_code,
                attempt.error,
                attempt.duration_ms,
            )
            if delivery["status"] != "pending":
                return  # delivered by another attempt (a resend's) meanwhile
            if attempt.succeeded:
                await _delivered(conn, due)
                ATTEMPTS.labels("delivered").inc()
                return
            failures = earlier + 1
            window = timedelta(seconds=settings.webhooks_retry_window_s)
            if attempt.at < delivery["retry_from"] + window and failures < MAX_ATTEMPTS:
                wait = backoff_s(
                    failures, settings.webhooks_retry_first_s, settings.webhooks_retry_max_s
                )
                await _failed(conn, due, attempt, attempt.at + timedelta(seconds=wait))
                ATTEMPTS.labels("retrying").inc()
                return
            await _failed(conn, due, attempt, None)
            ATTEMPTS.labels("gave_up").inc()
            success = endpoint["last_success_at"]
            if endpoint["enabled"] and (success is None or success < delivery["retry_from"]):
                await self._disable(conn, due, endpoint, attempt)

    async def _disable(
        self, conn: asyncpg.Connection, due: Due, endpoint: asyncpg.Record, attempt: Attempt
    ) -> None:
        """Disable an endpoint that failed everything for a whole retry window, and tell its
        owner (the event, in this transaction)."""
        await conn.execute(
            """UPDATE webhook_endpoints SET enabled = false, disabled_at = now(), updated_at = now()
                WHERE id = $1""",
            due.endpoint_id,
        )
        failing_since = endpoint["failing_since"] or attempt.at
        event = outbox.Event(
            "webhook.endpoint.disabled",
            f"webhook-endpoint/{due.endpoint_id}",
            f"user/{endpoint['user_id']}",
            datetime.now(UTC),
            {
                "endpoint_id": str(due.endpoint_id),
                "user_id": str(endpoint["user_id"]),
                "url": without_query(endpoint["url"]),
                "failing_since": failing_since.isoformat(),
            },
        )
        await outbox.write(conn, [event], self._hooks.settings.events_partitions)
        ENDPOINTS_DISABLED.inc()
        log.warning("webhook endpoint disabled", endpoint_id=str(due.endpoint_id))


async def _delivered(conn: asyncpg.Connection, due: Due) -> None:
    await conn.execute(
        """UPDATE webhook_deliveries
              SET status = 'delivered', delivered_at = now(), next_attempt_at = NULL,
                  attempts = attempts + 1
            WHERE id = $1 AND event_time = $2""",
        due.delivery_id,
        due.event_time,
    )
    await conn.execute(
        """UPDATE webhook_endpoints SET last_success_at = now(), failing_since = NULL
            WHERE id = $1""",
        due.endpoint_id,
    )


async def _failed(
    conn: asyncpg.Connection, due: Due, attempt: Attempt, next_at: datetime | None
) -> None:
    """A failed attempt: due again at `next_at`, or given up (None)."""
    await conn.execute(
        """UPDATE webhook_deliveries
              SET attempts = attempts + 1, next_attempt_at = $2,
                  status = CASE WHEN $2::timestamptz IS NULL THEN 'failed' ELSE 'pending' END
            WHERE id = $1 AND event_time = $3""",
        due.delivery_id,
        next_at,
        due.event_time,
    )
    await conn.execute(
        """UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, $2)
            WHERE id = $1""",
        due.endpoint_id,
        attempt.at,
    )


async def serve(pool: asyncpg.Pool, hooks: Webhooks) -> None:
    """This process's dispatcher, until cancelled (billfold.app)."""
    await Dispatcher(pool, hooks).run()
