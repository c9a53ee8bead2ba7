"""An endpoint's deliveries as its owner sees them, each with its attempts, and resending one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from billfold.platform import cursors
from billfold.platform.errors import NotFound, ValidationFailed
from billfold.platform.strict import ascii_digits, shown
from billfold.webhooks.endpoints import EndpointDisabled, access_endpoint

MAX_LIMIT = 100
# The latest attempts shown with each delivery (attempt_count says how many there were).
ATTEMPTS_SHOWN = 20

DELIVERY_COLUMNS = """
id, event_id, event_type, status, attempts, next_attempt_at, created_at, delivered_at, event_time
"""
PAGE = f"""
SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
 WHERE endpoint_id = $1 AND id < $2
 ORDER BY id DESC LIMIT $3
"""
ATTEMPTS = """
SELECT delivery_id, attempted_at, status_code, error, duration_ms FROM (
    SELECT a.*, row_number() OVER (PARTITION BY delivery_id ORDER BY id DESC) AS newest
      FROM webhook_attempts a
     WHERE delivery_id = ANY($1::bigint[]) AND event_time BETWEEN $3 AND $4) latest
 WHERE newest <= $2
 ORDER BY delivery_id, attempted_at, id
"""


def encode_cursor(delivery_id: int) -> str:
    return cursors.encode("d", delivery_id)


def decode_cursor(cursor: str) -> int:
    return cursors.decode("d", cursor)


async def list_deliveries(
    pool: asyncpg.Pool, user_id: uuid.UUID, endpoint_id: str, limit: int, cursor: str | None
) -> dict[str, Any]:
    """One page of the owner's endpoint's deliveries, newest first, and the next page's cursor
    (None on the last)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit {limit} must be 1 to {MAX_LIMIT}", field="limit")
    before = decode_cursor(cursor) if cursor else 2**62
    endpoint = await access_endpoint(pool, user_id, endpoint_id)
    rows = await pool.fetch(PAGE, endpoint["id"], before, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    attempts: dict[int, list[dict[str, Any]]] = {row["id"]: [] for row in rows}
    # A delivery's attempts share its month (migration 0036): only the page's months are read.
    times = [row["event_time"] for row in rows] or [datetime.now(UTC)]
    found = await pool.fetch(ATTEMPTS, list(attempts), ATTEMPTS_SHOWN, min(times), max(times))
    for attempt in found:
        attempts[attempt["delivery_id"]].append(attempt_view(attempt))
    return {
        "deliveries": [delivery_view(row, attempts[row["id"]]) for row in rows],
        "next_cursor": encode_cursor(rows[-1]["id"]) if more else None,
    }


def delivery_view(row: asyncpg.Record, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "delivery_id": str(row["id"]),
        "event_id": str(row["event_id"]),
        "event_type": row["event_type"],
        "status": row["status"],
        "attempt_count": row["attempts"],
        "next_attempt_at": _iso(row["next_attempt_at"]),
        "created_at": row["created_at"].isoformat(),
        "delivered_at": _iso(row["delivered_at"]),
        "attempts": attempts,
    }


def attempt_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "attempted_at": row["attempted_at"].isoformat(),
        "status_code": row["status_code"],
        "error": row["error"],
        "duration_ms": row["duration_ms"],
    }


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


async def do_resend_delivery(
    pool: asyncpg.Pool, user_id: uuid.UUID, endpoint_id: str, delivery_id: str
) -> dict[str, Any]:
    """Deliver again, now, with a retry window of its own: a delivery that failed, or one that
    succeeded (the receiver lost it). Refused while the endpoint is disabled. Locks: the
    endpoint's row, then the delivery's."""
    async with pool.acquire() as conn, conn.transaction():
        endpoint = await access_endpoint(conn, user_id, endpoint_id, lock=True)
        if not endpoint["enabled"]:
            raise EndpointDisabled(
                f"webhook endpoint {endpoint['id']} is disabled: enable it first",
                endpoint_id=str(endpoint["id"]),
            )
        row = await conn.fetchrow(
            f"""UPDATE webhook_deliveries
                   SET status = 'pending', next_attempt_at = now(), retry_from = now(),
                       delivered_at = NULL
                 WHERE id = $1 AND endpoint_id = $2
             RETURNING {DELIVERY_COLUMNS}""",
            _delivery_number(delivery_id),
            endpoint["id"],
        )
    if row is None:
        raise _delivery_not_found(delivery_id)
    return delivery_view(row, [])


def _delivery_number(delivery_id: str) -> int:
    if not ascii_digits(delivery_id, 18):
        raise _delivery_not_found(delivery_id)
    return int(delivery_id)


def _delivery_not_found(delivery_id: str) -> NotFound:
    return NotFound(
        f"webhook delivery {shown(delivery_id)} does not exist", delivery_id=delivery_id[:64]
    )


async def delivery_health(pool: asyncpg.Pool) -> dict[str, Any]:
    """Outbound webhooks as operators watch them: deliveries pending (and the oldest's time),
    deliveries given up in the last day, endpoints failing (enabled, failing since a time) and
    endpoints disabled."""
    row = await pool.fetchrow(
        """SELECT
             (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') AS pending,
             (SELECT min(created_at) FROM webhook_deliveries WHERE status = 'pending')
                 AS oldest_pending,
             (SELECT count(*) FROM webhook_deliveries
               WHERE status = 'failed' AND created_at > now() - interval '1 day')
                 AS failed_today,
             (SELECT count(*) FROM webhook_endpoints
               WHERE enabled AND failing_since IS NOT NULL) AS failing_endpoints,
             (SELECT count(*) FROM webhook_endpoints WHERE NOT enabled) AS disabled_endpoints"""
    )
    return dict(row)
