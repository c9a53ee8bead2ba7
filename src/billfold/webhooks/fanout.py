"""The `webhooks` consumer group's handler: each event becomes a delivery to every endpoint of
the people it concerns that asks for its kind.

An event concerns the person its data names as `user_id`; a `transfer.completed`, its sender
and its recipient (`from_user_id`, `to_user_id`; null for a system account); a merchant
payment's, its payer and the merchant's owner (`payer_id`, `owner_id`); a checkout session's,
the merchant's owner. An endpoint gets
the events from its registration on (a group reading the stream from its start must not send
an app the past), while it is enabled. One statement writes a batch's deliveries; the pair
(endpoint, event id) is unique, so an event seen twice makes no second delivery. The table is
partitioned by the event's time (migration 0036), which every copy of an event carries the
same, so the unique key (endpoint, event id, event time) is that pair's.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from billfold.events.consumer import CloudEvent, Handler

GROUP = "webhooks"
_TYPE = re.compile(r"^billfold\.([a-z_.]+)\.v[0-9]+$")
# Whom each kind concerns, by the fields of its data; the others' `user_id`.
PEOPLE = {
    "transfer.completed": ("from_user_id", "to_user_id"),
    "refund.completed": ("owner_id", "payer_id"),
    **{
        f"payment.{change}": ("payer_id", "owner_id")
        for change in ("completed", "held", "declined")
    },
    **{
        f"checkout.session.{change}": ("owner_id",)
        for change in ("created", "paid", "expired", "canceled")
    },
}
PERSON = ("user_id",)

FAN_OUT = """
INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, body, next_attempt_at,
                                event_time)
SELECT e.id, u.event_id, u.kind, u.body, now(), u.time
  FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::timestamptz[])
       AS u(event_id, kind, user_id, body, time)
  JOIN webhook_endpoints e
    ON e.user_id = u.user_id AND e.enabled AND e.created_at <= u.time
   AND ('*' = ANY(e.event_types) OR u.kind = ANY(e.event_types))
 ORDER BY u.time, e.id
    ON CONFLICT (endpoint_id, event_id, event_time) DO NOTHING
"""


def kind_of(event: CloudEvent) -> str | None:
    """`transfer.completed` of `billfold.transfer.completed.v1`; None for another source's."""
    match = _TYPE.fullmatch(str(event.get("type", "")))
    return match.group(1) if match else None


def people(kind: str, data: Any) -> Iterator[uuid.UUID]:
    """The people an event's data says it concerns (each once; malformed ids skipped)."""
    if not isinstance(data, dict):
        return
    seen: set[uuid.UUID] = set()
    for name in PEOPLE.get(kind, PERSON):
        value = data.get(name)
        try:
            person = uuid.UUID(value) if isinstance(value, str) else None
        except ValueError:
            person = None
        if person is not None and person not in seen:
            seen.add(person)
            yield person


def rows(events: Sequence[CloudEvent]) -> list[tuple[uuid.UUID, str, uuid.UUID, str, datetime]]:
    """(event id, kind, person, body, time) for each person each event concerns."""
    found = []
    for event in events:
        kind = kind_of(event)
        try:
            event_id = uuid.UUID(str(event.get("id")))
            time = datetime.fromisoformat(str(event.get("time")))
        except ValueError:
            continue
        if kind is None or time.tzinfo is None:
            continue
        body = orjson.dumps(event).decode()
        found += [(event_id, kind, p, body, time) for p in people(kind, event.get("data"))]
    return found


async def fan_out(pool: asyncpg.Pool, events: Sequence[CloudEvent]) -> int:
    """Write the deliveries of a batch of events; how many were new."""
    found = rows(events)
    if not found:
        return 0
    columns = [list(column) for column in zip(*found, strict=True)]
    status = await pool.execute(FAN_OUT, *columns)
    return int(status.split()[-1])


def handler(pool: asyncpg.Pool) -> Handler:
    """The group's handler (billfold.app._consumers)."""

    async def handle(events: Sequence[CloudEvent]) -> None:
        await fan_out(pool, events)

    return handle
