"""A wallet's history: its ledger entries newest first, filtered, paged by keyset.

The cursor is the account sequence number of the last row shown. A page reads entries with a
lower sequence number, so transfers that arrive while someone pages only ever add rows above the
first page: paging never repeats or skips a row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg

from billfold.ledger.accounts import posted_balance
from billfold.ledger.history import (
    EntryFilter,
    Joined,
    entries_page,
    last_seq_before,
    search_entries,
)
from billfold.platform import cursors
from billfold.platform.currency import WALLET_CURRENCY, format_amount
from billfold.platform.errors import ValidationFailed
from billfold.platform.strict import shown, to_utc
from billfold.wallet.handles import parse_handle
from billfold.wallet.transfers import public_id
from billfold.wallet.users import User, find_user

# The ledger codes a history filters by (`type`): a wallet's, and a merchant account's
# (merchants.sales), whose money leaves as payouts.
TYPES = (
    "p2p",
    "add_funds",
    "cash_out",
    "merchant_payment",
    "refund",
    "payout",
    "reversal",
    "fee",
)
STATUSES = ("COMPLETED", "PENDING", "CANCELLED")
MAX_LIMIT = 200
MAX_QUERY_LENGTH = 100

# Each row's counterparty: the user whose wallet is the other account (ledger.history.Joined).
COUNTERPARTY = Joined(
    columns=", u.username AS counterparty",
    joins="""  LEFT JOIN wallets w ON w.account_id = page.other_account_id
  LEFT JOIN users u ON u.id = w.user_id
""",
)
# `q`: the account's entries whose transfer's note has every word of q (the last one may be the
# start of a word), or whose counterparty's username starts with q (ledger.history's search),
# newest first, SEARCH_MAX at a time: a page reads the next SEARCH_MAX matches below its cursor,
# so paging goes on to the oldest.
SEARCH_MAX = 1000
MIN_PREFIX = 3
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
    return cursors.encode("s", account_seq)


def decode_cursor(cursor: str) -> int:
    return cursors.decode("s", cursor)


async def read_history(pool: asyncpg.Pool, user: User, query: HistoryQuery) -> dict[str, Any]:
    """One page of the user's history and the cursor of the next page (None on the last)."""
    return await read_account_history(pool, user.account_id, query)


async def read_account_history(
    pool: asyncpg.Pool, account: int, query: HistoryQuery, named: Joined = COUNTERPARTY
) -> dict[str, Any]:
    """One page of an account's history (a wallet's, or a merchant account's: merchants.sales),
    each row's counterparty named by `named`."""
    check_history_query(query)
    async with pool.acquire() as conn:
        upper = decode_cursor(query.cursor) if query.cursor else 2**62
        if query.end is not None:
            last = await last_seq_before(conn, account, query.end, query.end_inclusive)
            upper = min(upper, last + 1)
        lower = await last_seq_before(conn, account, query.start, False) if query.start else 0
        other = await _counterparty_account(conn, query.counterparty)
        seqs = (
            await _search(conn, account, upper, lower, query.text, query.start, query.end)
            if query.text
            else None
        )
        if other == -1 or seqs == []:
            rows: list[asyncpg.Record] = []
        else:
            shown = EntryFilter(
                codes=query.types or None,
                sign={"in": 1, "out": -1}.get(query.direction or ""),
                min_amount_minor=query.min_amount_minor,
                max_amount_minor=query.max_amount_minor,
                other_account_id=other,
                status=query.status.upper() if query.status else None,
                account_seqs=seqs,
                since=query.start,
                until=query.end,
            )
            rows = await entries_page(conn, account, upper, lower, shown, query.limit + 1, named)
        balance = await posted_balance(conn, account)
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    currency = rows[0]["currency"] if rows else WALLET_CURRENCY
    return {
        "transactions": [_row_view(row) for row in rows],
        "balance": format_amount(balance, currency),
        "next_cursor": encode_cursor(rows[-1]["account_seq"]) if more else None,
    }


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
    conn: asyncpg.Connection,
    account: int,
    upper: int,
    lower: int,
    text: str,
    since: datetime | None,
    until: datetime | None,
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
    others = [r["account_id"] for r in counterparties]
    return await search_entries(
        conn, account, upper, lower, matcher, others, SEARCH_MAX, since, until
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# Movements whose fee the person pays on top (a card add-funds). A merchant payment's fee is
# the merchant's, taken from what it receives: its payer pays the price, never more.
PAID_FEES = frozenset({"add_funds"})


def _row_view(row: asyncpg.Record) -> dict[str, Any]:
    """One row, named by the public id of its movement (the id a lookup at
    `/transfers/{id}` takes); a card add-funds shows its fee and what the card paid. A merchant
    payment or refund names the merchant (its account is no person's wallet)."""
    amount = row["amount_minor"]
    metadata = row["metadata"] or row["hold_metadata"] or {}
    fee = int(metadata.get("fee_minor") or 0) if row["code"] in PAID_FEES else 0
    currency = row["currency"]
    return {
        "id": public_id(row["transfer_id"], row["pending_id"], metadata),
        "type": row["code"],
        "direction": "in" if amount > 0 else "out",
        "amount": format_amount(abs(amount), currency),
        "fee": format_amount(fee, currency),
        "total": format_amount(abs(amount) + fee, currency),
        "currency": currency,
        "counterparty": row["counterparty"] or metadata.get("merchant_name"),
        "timestamp": row["created_at"].isoformat(),
        "status": row["status"],
        "note": metadata.get("note"),
    }
