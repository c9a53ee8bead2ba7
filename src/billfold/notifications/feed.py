"""A person's in-app feed: their notifications newest first, paged by keyset, and marked read.

The cursor is the position (`seq`) of the last notification shown; the next page reads below
it, so notifications that arrive while someone pages only add to the top: paging never repeats
or skips one. Marking read names notifications (at most MAX_IDS), or one notification and every
older one (`up_to`: what a client showed, without what arrived since).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from billfold.platform import cursors
from billfold.platform.errors import NotFound, ValidationFailed

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_IDS = 100
# The unread count stops here (a badge shows "99+"; counting further costs without telling).
UNREAD_COUNT_MAX = 1000

_COLUMNS = "seq, id, kind, category, subject, body, about, happened_at, read_at"
_PAGE = f"""
SELECT {_COLUMNS} FROM notifications
 WHERE user_id = $1 AND in_feed AND seq < $2
 ORDER BY seq DESC LIMIT $3
"""
_UNREAD_PAGE = f"""
SELECT {_COLUMNS} FROM notifications
 WHERE user_id = $1 AND in_feed AND read_at IS NULL AND seq < $2
 ORDER BY seq DESC LIMIT $3
"""
_UNREAD_COUNT = f"""
SELECT count(*) FROM (SELECT 1 FROM notifications
                       WHERE user_id = $1 AND in_feed AND read_at IS NULL
                       LIMIT {UNREAD_COUNT_MAX}) AS unread
"""
_OWNED = "SELECT id FROM notifications WHERE user_id = $1 AND in_feed AND id = ANY($2::uuid[])"
_MARK_IDS = """
UPDATE notifications SET read_at = now()
 WHERE user_id = $1 AND in_feed AND id = ANY($2::uuid[]) AND read_at IS NULL
"""
_SEQ_OF = "SELECT seq FROM notifications WHERE user_id = $1 AND in_feed AND id = $2"
_MARK_UP_TO = """
UPDATE notifications SET read_at = now()
 WHERE user_id = $1 AND in_feed AND read_at IS NULL AND seq <= $2
"""
_NO_CURSOR = 2**63 - 1


@dataclass(frozen=True, slots=True)
class FeedQuery:
    unread: bool = False
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class MarkRead:
    ids: tuple[uuid.UUID, ...] = ()
    up_to: uuid.UUID | None = None


async def read_feed(pool: asyncpg.Pool, user_id: uuid.UUID, query: FeedQuery) -> dict[str, Any]:
    """One page of the person's feed (all, or unread only), the cursor of the next (None on
    the last) and how many are unread (up to UNREAD_COUNT_MAX)."""
    if not 1 <= query.limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit {query.limit} must be 1 to {MAX_LIMIT}", field="limit")
    below = decode_cursor(query.cursor) if query.cursor else _NO_CURSOR
    statement = _UNREAD_PAGE if query.unread else _PAGE
    async with pool.acquire() as conn:
        rows = await conn.fetch(statement, user_id, below, query.limit + 1)
        unread = await conn.fetchval(_UNREAD_COUNT, user_id)
    shown = rows[: query.limit]
    more = len(rows) > query.limit
    return {
        "notifications": [_view(row) for row in shown],
        "next_cursor": encode_cursor(shown[-1]["seq"]) if more else None,
        "unread_count": unread,
    }


def check_mark_read(ids: list[str] | None, up_to: str | None) -> MarkRead:
    """Exactly one of `ids` (1 to MAX_IDS notification ids) and `up_to` (one id)."""
    if (ids is None) == (up_to is None):
        raise ValidationFailed("give either ids or up_to, not both or neither", field="ids")
    if up_to is not None:
        return MarkRead(up_to=_parse_id(up_to, "up_to"))
    assert ids is not None
    if not 1 <= len(ids) <= MAX_IDS:
        raise ValidationFailed(f"ids must list 1 to {MAX_IDS} notification ids", field="ids")
    return MarkRead(ids=tuple(dict.fromkeys(_parse_id(i, "ids") for i in ids)))


async def do_mark_read(pool: asyncpg.Pool, user_id: uuid.UUID, mark: MarkRead) -> dict[str, Any]:
    """Mark the person's notifications read: all or none (a named one that is not theirs is a
    404, and nothing is marked). How many were unread, and how many are unread now. Locks: the
    rows it marks, by its UPDATE."""
    async with pool.acquire() as conn, conn.transaction():
        if mark.up_to is not None:
            seq = await conn.fetchval(_SEQ_OF, user_id, mark.up_to)
            if seq is None:
                raise _not_found(mark.up_to, "up_to")
            done = await conn.execute(_MARK_UP_TO, user_id, seq)
        else:
            owned = {row["id"] for row in await conn.fetch(_OWNED, user_id, list(mark.ids))}
            missing = [i for i in mark.ids if i not in owned]
            if missing:
                raise _not_found(missing[0], "ids")
            done = await conn.execute(_MARK_IDS, user_id, list(mark.ids))
        unread = await conn.fetchval(_UNREAD_COUNT, user_id)
    return {"marked": int(done.split()[-1]), "unread_count": unread}


def encode_cursor(seq: int) -> str:
    return cursors.encode("n", seq)


def decode_cursor(cursor: str) -> int:
    return cursors.decode("n", cursor)


def _view(row: asyncpg.Record) -> dict[str, Any]:
    read_at = row["read_at"]
    return {
        "id": str(row["id"]),
        "kind": row["kind"],
        "category": row["category"],
        "title": row["subject"],
        "body": row["body"],
        "about": row["about"],
        "time": row["happened_at"].isoformat(),
        "read": read_at is not None,
        "read_at": read_at.isoformat() if read_at else None,
    }


def _parse_id(text: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ValidationFailed(
            f"{field} '{text[:40]}' is not a notification id (a uuid)", field=field
        ) from None


def _not_found(notification_id: uuid.UUID, field: str) -> NotFound:
    return NotFound(
        f"notification '{notification_id}' does not exist", field=field, id=str(notification_id)
    )
