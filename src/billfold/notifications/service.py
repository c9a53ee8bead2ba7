"""The consumer group `notifications`: each batch of events read as notices (notifications.kinds),
rendered (notifications.texts) for the people they tell, as those people's preferences say, and
recorded in one statement; the mailer (notifications.mail) then sends the emails.

Idempotent by event id: a notice's row is unique by (event, person), so an event delivered again
records nothing new and sends nothing new. A database failure raises, and the consumer tries the
batch again; an event whose data cannot be read is logged and skipped (trying it again would not
help).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from prometheus_client import Counter

from billfold.config import Settings
from billfold.events.consumer import CloudEvent
from billfold.notifications.kinds import Malformed, Notice, notices_of
from billfold.notifications.mail import LocalSink, Mailer, SmtpServer, transport
from billfold.notifications.preferences import DEFAULT, Preference, read_preferences
from billfold.notifications.texts import render
from billfold.platform.logging import get_logger

GROUP = "notifications"
log = get_logger("billfold.notifications")

NOTIFICATIONS = Counter(
    "billfold_notifications",
    "Notifications recorded (an event told to a person), by kind.",
    ["kind"],
)
EVENTS_UNREAD = Counter(
    "billfold_notifications_events_skipped",
    "Events the notifications consumer could not read (logged with their ids) and skipped.",
)

_PEOPLE = "SELECT id, username, email FROM users WHERE id = ANY($1::uuid[])"
_RECORD = """
INSERT INTO notifications (event_id, user_id, kind, category, subject, body, about, happened_at,
                           in_feed, email_status, email_to, email_next_at)
SELECT r.event_id, r.user_id, r.kind, r.category, r.subject, r.body, r.about, r.happened_at,
       r.in_feed, CASE WHEN r.email_to IS NULL THEN 'none' ELSE 'pending' END, r.email_to,
       CASE WHEN r.email_to IS NULL THEN NULL ELSE now() END
  FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
              $8::timestamptz[], $9::boolean[], $10::text[])
       AS r(event_id, user_id, kind, category, subject, body, about, happened_at, in_feed,
            email_to)
ON CONFLICT (event_id, user_id) DO NOTHING
RETURNING kind, email_status
"""


@dataclass(frozen=True, slots=True)
class Person:
    username: str
    email: str


class Notifications:
    """The group's handler (`handle`) and the mailer behind it, in one process."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.server: SmtpServer | LocalSink = transport(settings)
        self.mailer = Mailer(pool, settings, self.server)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, pool: asyncpg.Pool, settings: Settings) -> Notifications:
        """The handler, with its mailer sending (and, on the embedded stack, the mail sink
        served here if no other process serves it)."""
        notifications = cls(pool, settings)
        await notifications.server.start()
        notifications._task = asyncio.create_task(notifications.mailer.serve(), name="mailer")
        return notifications

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.server.close()

    async def handle(self, events: Sequence[CloudEvent]) -> None:
        """Record what `events` tell, once per event and person; wake the mailer if an email
        is to go."""
        notices = _readable(events)
        if not notices:
            return
        ids = {n.user_id for n in notices} | {n.counterpart for n in notices if n.counterpart}
        async with self.pool.acquire() as conn:
            people = {
                r["id"]: Person(r["username"], r["email"])
                for r in await conn.fetch(_PEOPLE, list(ids))
            }
            preferences = await read_preferences(conn, list({n.user_id for n in notices}))
            rows = [_row(n, people, preferences) for n in notices if n.user_id in people]
            if not rows:
                return
            recorded = await conn.fetch(_RECORD, *_columns(rows))
        for row in recorded:
            NOTIFICATIONS.labels(row["kind"]).inc()
        if any(row["email_status"] == "pending" for row in recorded):
            self.mailer.wake.set()


def _readable(events: Sequence[CloudEvent]) -> list[Notice]:
    notices: list[Notice] = []
    for event in events:
        try:
            notices += notices_of(event)
        except Malformed as error:
            log.warning("event skipped", event_id=str(event.get("id")), error=str(error))
            EVENTS_UNREAD.inc()
    return notices


@dataclass(frozen=True, slots=True)
class _Row:
    notice: Notice
    subject: str
    body: str
    in_feed: bool
    email_to: str | None


def _row(
    notice: Notice,
    people: Mapping[uuid.UUID, Person],
    preferences: Mapping[tuple[uuid.UUID, str], Preference],
) -> _Row:
    """A notice rendered for its person, as their preferences for its category say."""
    values = dict(notice.values)
    counterpart = people.get(notice.counterpart) if notice.counterpart else None
    if counterpart is not None:
        values["counterparty"] = f"@{counterpart.username}"
    text = render(notice.kind, values)
    preference = preferences.get((notice.user_id, notice.category.name), DEFAULT)
    in_feed = preference.feed or not notice.category.feed_optional
    email = people[notice.user_id].email if preference.email else None
    return _Row(notice, text.subject, text.body, in_feed, email)


def _columns(rows: Sequence[_Row]) -> list[list[Any]]:
    return [
        [r.notice.event_id for r in rows],
        [r.notice.user_id for r in rows],
        [r.notice.kind for r in rows],
        [r.notice.category.name for r in rows],
        [r.subject for r in rows],
        [r.body for r in rows],
        [r.notice.about for r in rows],
        [r.notice.time for r in rows],
        [r.in_feed for r in rows],
        [r.email_to for r in rows],
    ]
