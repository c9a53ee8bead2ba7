"""A wallet's history: its ledger entries newest first, filtered, paged by keyset.

The cursor is the account sequence number of the last row shown. A page reads entries with a
lower sequence number, so transfers that arrive while someone pages only ever add rows above the
first page: paging never repeats or skips a row.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg

from billfold.platform.errors import ValidationFailed
from billfold.platform.strict import ascii_digits, shown, to_utc
from billfold.wallet.handles import parse_handle
from billfold.wallet.money import format_amount
from billfold.wallet.transfers import public_id
from billfold.wallet.users import User, find_user

TYPES = ("p2p", "add_funds", "cash_out", "merchant_payment", "refund", "reversal", "fee")
STATUSES = ("COMPLETED", "PENDING", "CANCELLED")
MAX_LIMIT = 200
MAX_QUERY_LENGTH = 100

HISTORY = """
WITH page AS (
    SELECT e.account_seq, e.transfer_id, e.amount_minor, e.currency, e.created_at,
           t.code, t.kind, t.metadata, t.pending_id,
           CASE WHEN t.kind <> 'hold' THEN 'COMPLETED'
                WHEN r.kind IS NULL THEN 'PENDING'
                WHEN r.kind = 'void' THEN 'CANCELLED'
           END AS status,
           other.account_id AS other_account_id
      FROM entries e
      JOIN transfers t ON t.id = e.transfer_id
      LEFT JOIN transfers r ON t.kind = 'hold' AND r.pending_id = t.id
      LEFT JOIN LATERAL (
            SELECT o.account_id FROM entries o
             WHERE o.transfer_id = e.transfer_id AND o.account_id <> e.account_id
             ORDER BY o.account_id LIMIT 1
      ) other ON true
     WHERE e.account_id = $1
       AND e.account_seq < $2 AND e.account_seq > $3
       -- A posted hold shows as the transfer that posted it, not twice.
       AND (t.kind <> 'hold' OR r.kind IS DISTINCT FROM 'post')
       AND ($4::text[] IS NULL OR t.code = ANY ($4))
       AND ($5::int IS NULL OR sign(e.amount_minor) = $5)
       AND ($6::bigint IS NULL OR abs(e.amount_minor) >= $6)
       AND ($7::bigint IS NULL OR abs(e.amount_minor) <= $7)
       AND ($8::bigint IS NULL OR other.account_id = $8)
       AND ($9::text IS NULL OR (CASE WHEN t.kind <> 'hold' THEN 'COMPLETED'
                                      WHEN r.kind IS NULL THEN 'PENDING'
                                      ELSE 'CANCELLED' END) = $9)
       AND ($10::bigint[] IS NULL OR e.account_seq = ANY ($10))
     ORDER BY e.account_seq DESC
     LIMIT $11
)
SELECT page.*, u.username AS counterparty, hold.metadata AS hold_metadata
  FROM page
  LEFT JOIN wallets w ON w.account_id = page.other_account_id
  LEFT JOIN users u ON u.id = w.user_id
  -- A posted hold's row is its post, which carries no metadata: the hold's says what it was.
  LEFT JOIN transfers hold ON hold.id = page.pending_id
 ORDER BY page.account_seq DESC
"""


# `q`: the account's entries whose transfer's note has every word of q (the last one may be the
# start of a word), or whose counterparty's username starts with q. Found through the index on
# note words and the entries of the matching counterparties, newest first, SEARCH_MAX at a time:
# a page reads the next SEARCH_MAX matches below its cursor, so paging goes on to the oldest.
SEARCH = """
SELECT e.account_seq
  FROM (
        SELECT t.id FROM transfers t
         WHERE $4::tsquery IS NOT NULL AND t.metadata ? 'note'
           AND to_tsvector('simple', t.metadata ->> 'note') @@ $4
        UNION
        SELECT o.transfer_id FROM entries o
         WHERE o.account_id = ANY ($5::bigint[])
       ) m
  JOIN entries e ON e.transfer_id = m.id AND e.account_id = $1
 WHERE e.account_seq < $2 AND e.account_seq > $3
 ORDER BY e.account_seq DESC
 LIMIT $6
"""
SEARCH_MAX = 1000
MIN_PREFIX = 3
# A search's page reads just the entries it found, by their keys, instead of filtering a scan.
HISTORY_FOUND = HISTORY.replace(
    "($10::bigint[] IS NULL OR e.account_seq = ANY ($10))", "e.account_seq = ANY ($10::bigint[])"
)
MAX_COUNTERPARTIES = 50
_COUNTERPARTIES = """
SELECT w.account_id FROM users u JOIN wallets w ON w.user_id = u.id
 WHERE u.username LIKE $1 ESCAPE '\\' LIMIT $2
"""
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class HistoryQuery:
    start: datetime | None = None  # inclusive
    end: datetime | None = None
    end_inclusive: bool = True
    types: tuple[str, ...] = ()
    direction: str | None = None
    status: str | None = None
    min_amount_minor: int | None = None
    max_amount_minor: int | None = None
    counterparty: str | None = None
    text: str | None = None
    limit: int = 50
    cursor: str | None = None


def parse_moment(raw: str, field: str, end_of_day: bool) -> tuple[datetime, bool]:
    """An ISO date or timestamp, in UTC (naive means UTC), and whether the bound includes
    that instant. One UTC cannot hold (9999-12-31 as `to`, whose day ends in year 10000; an
    offset that carries it past year 1 or 9999) is a 422 naming it.

    A date as `from` starts at its midnight; as `to` it runs to the next midnight, exclusive.
    A timestamp is an inclusive bound either way."""
    text = raw.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is not None:
        midnight = datetime.combine(day, time.min, tzinfo=UTC)
        if not end_of_day:
            return midnight, True
        try:
            return midnight + timedelta(days=1), False
        except OverflowError:
            raise ValidationFailed(
                f"{field} {shown(raw)} ends at a midnight outside the moments this API can"
                f" represent; give its last moment instead, {text}T23:59:59.999999Z",
                field=field,
            ) from None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(
            f"{field} '{raw[:40]}' is not an ISO date or timestamp", field=field
        ) from None
    return to_utc(moment, field, raw), True


def check_history_query(query: HistoryQuery) -> None:
    for kind in query.types:
        if kind not in TYPES:
            raise ValidationFailed(
                f"type '{kind[:40]}' is not one of {', '.join(TYPES)}", field="type"
            )
    if query.direction not in (None, "in", "out"):
        raise ValidationFailed(
            f"direction '{query.direction}' must be 'in' or 'out'", field="direction"
        )
    if query.status is not None and query.status.upper() not in STATUSES:
        raise ValidationFailed(
            f"status '{query.status[:40]}' is not one of {', '.join(STATUSES)}", field="status"
        )
    if not 1 <= query.limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit {query.limit} must be 1 to {MAX_LIMIT}", field="limit")
    if query.text is not None and len(query.text) > MAX_QUERY_LENGTH:
        raise ValidationFailed(f"q is longer than {MAX_QUERY_LENGTH} characters", field="q")
    if query.start and query.end and query.start >= query.end:
        raise ValidationFailed("'from' must be before 'to'", field="from")


def encode_cursor(account_seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{account_seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        # An account's sequence number is a bigint: 18 digits are always one.
        if not text.startswith("s") or not ascii_digits(text[1:], 18):
            raise ValueError(text)
        return int(text[1:])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed(
            f"cursor '{cursor[:40]}' is not one this API gave out", field="cursor"
        ) from None


async def read_history(pool: asyncpg.Pool, user: User, query: HistoryQuery) -> dict[str, Any]:
    """One page of the user's history and the cursor of the next page (None on the last)."""
    check_history_query(query)
    account = user.account_id
    async with pool.acquire() as conn:
        upper = decode_cursor(query.cursor) if query.cursor else 2**62
        if query.end is not None:
            last = await _last_seq_before(conn, account, query.end, query.end_inclusive)
            upper = min(upper, last + 1)
        lower = await _last_seq_before(conn, account, query.start, False) if query.start else 0
        other = await _counterparty_account(conn, query.counterparty)
        seqs = await _search(conn, account, upper, lower, query.text) if query.text else None
        if other == -1 or seqs == []:
            rows: list[asyncpg.Record] = []
        else:
            rows = await conn.fetch(
                HISTORY if seqs is None else HISTORY_FOUND,
                account,
                upper,
                lower,
                list(query.types) or None,
                {"in": 1, "out": -1}.get(query.direction or ""),
                query.min_amount_minor,
                query.max_amount_minor,
                other,
                query.status.upper() if query.status else None,
                seqs,
                query.limit + 1,
            )
        balance = await conn.fetchval("SELECT posted_minor FROM accounts WHERE id = $1", account)
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    currency = rows[0]["currency"] if rows else "USD"
    return {
        "transactions": [_row_view(row) for row in rows],
        "balance": format_amount(balance, currency),
        "next_cursor": encode_cursor(rows[-1]["account_seq"]) if more else None,
    }


async def _last_seq_before(
    conn: asyncpg.Connection, account: int, moment: datetime, inclusive: bool
) -> int:
    value = await conn.fetchval(
        "SELECT ledger_last_seq_before($1, $2, $3)", account, moment, inclusive
    )
    return int(value)


async def _counterparty_account(conn: asyncpg.Connection, handle_text: str | None) -> int | None:
    """The counterparty's wallet account; -1 when the handle names nobody (no rows match)."""
    if not handle_text:
        return None
    try:
        user = await find_user(conn, parse_handle(handle_text))
    except ValidationFailed:
        return -1
    return user.account_id if user else -1


async def _search(
    conn: asyncpg.Connection, account: int, upper: int, lower: int, text: str
) -> list[int]:
    """The sequence numbers of the account's entries below `upper` that `text` finds, newest
    first, at most SEARCH_MAX. (With other filters as well, a page holds those of these that
    pass them; a combination that passes none of SEARCH_MAX matches ends the paging early.)"""
    words = _WORD.findall(text.lower())[:8]
    # Whole words, but the last, which may be half typed. An exact word lets the index skip
    # through a common word's long list; a prefix match has to read the lists of every word it
    # starts, so a prefix shorter than MIN_PREFIX (a few thousand words start with "a") is
    # taken as a whole word.
    if words and len(words[-1]) >= MIN_PREFIX:
        words[-1] += ":*"
    matcher = " & ".join(words) or None
    name = text.strip().lower().removeprefix("@")
    counterparties = (
        await conn.fetch(_COUNTERPARTIES, f"{_escape_like(name)}%", MAX_COUNTERPARTIES)
        if name
        else []
    )
    rows = await conn.fetch(
        SEARCH,
        account,
        upper,
        lower,
        matcher,
        [r["account_id"] for r in counterparties],
        SEARCH_MAX,
    )
    return [r["account_seq"] for r in rows]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _row_view(row: asyncpg.Record) -> dict[str, Any]:
    """One row, named by the public id of its movement (the id a lookup at
    `/transfers/{id}` takes); a card add-funds shows its fee and what the card paid."""
    amount = row["amount_minor"]
    metadata = row["metadata"] or row["hold_metadata"] or {}
    fee = int(metadata.get("fee_minor") or 0)
    currency = row["currency"]
    return {
        "id": public_id(row["transfer_id"], row["pending_id"], metadata),
        "type": row["code"],
        "direction": "in" if amount > 0 else "out",
        "amount": format_amount(abs(amount), currency),
        "fee": format_amount(fee, currency),
        "total": format_amount(abs(amount) + fee, currency),
        "currency": currency,
        "counterparty": row["counterparty"],
        "timestamp": row["created_at"].isoformat(),
        "status": row["status"],
        "note": metadata.get("note"),
    }
