"""What a merchant reads of its sales: its payments (filtered, paged), its account's history
(payments in, refunds and payouts out, each with its counterparty), and a day's settlement
report for the books (`billfold merchants settlement`)."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from billfold.ledger.accounts import get_account
from billfold.ledger.history import Joined
from billfold.merchants.profiles import Merchant
from billfold.platform import cursors
from billfold.platform.currency import format_amount
from billfold.platform.errors import ValidationFailed
from billfold.wallet.history import HistoryQuery, read_account_history

PAYMENT_STATUSES = ("COMPLETED", "PENDING_VERIFICATION", "PENDING_REVIEW", "DECLINED")
MAX_LIMIT = 200
CURSOR_TAG = "p"
ONE_TICK = timedelta(microseconds=1)  # PostgreSQL's resolution: an inclusive end made exclusive

# A merchant account's rows name the payer: a payment's and a refund's metadata say who (the
# account on the other side of a payment may be fee revenue). A posted hold's row is its post,
# which has no metadata of its own: its hold's says.
PAYER = Joined(
    columns=", u.username AS counterparty",
    joins="""  LEFT JOIN users u ON u.id = coalesce(page.metadata ->> 'payer_id',
        (SELECT h.metadata ->> 'payer_id' FROM transfers h WHERE h.id = page.pending_id))::uuid
""",
)

_PAYMENTS = """
SELECT p.id, p.session_id, p.transfer_id, p.amount_minor, p.fee_minor, p.refunded_minor,
       p.currency, p.status, p.note, p.created_at, p.decided_at, u.username AS payer
  FROM merchant_payments p JOIN users u ON u.id = p.payer_id
 WHERE p.merchant_id = $1 AND (p.created_at, p.transfer_id) < ($2, $3)
   AND ($4::text IS NULL OR p.status = $4)
   AND ($5::timestamptz IS NULL OR p.created_at >= $5)
   AND ($6::timestamptz IS NULL OR p.created_at < $6)
 ORDER BY p.created_at DESC, p.transfer_id DESC
 LIMIT $7
"""


@dataclass(frozen=True)
class PaymentsQuery:
    status: str | None = None
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    limit: int = 50
    cursor: str | None = None


def check_payments_query(query: PaymentsQuery) -> None:
    if query.status is not None and query.status.upper() not in PAYMENT_STATUSES:
        raise ValidationFailed(
            f"status '{query.status[:40]}' is not one of {', '.join(PAYMENT_STATUSES)}",
            field="status",
        )
    if not 1 <= query.limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit {query.limit} must be 1 to {MAX_LIMIT}", field="limit")
    if query.start and query.end and query.start >= query.end:
        raise ValidationFailed("'from' must be before 'to'", field="from")


async def list_payments(
    pool: asyncpg.Pool, merchant: Merchant, query: PaymentsQuery
) -> dict[str, Any]:
    """One page of the merchant's payments, newest first, and the cursor of the next (None on
    the last). Paged by keyset on (created_at, transfer id): the ledger's ids break ties within
    a batch (whose payments share a moment) but are no order in time across processes, which
    take them in blocks; a payment made while a merchant pages only adds rows above the first
    page."""
    check_payments_query(query)
    before, transfer = _position(query.cursor)
    rows = await pool.fetch(
        _PAYMENTS,
        merchant.id,
        before,
        transfer,
        query.status.upper() if query.status else None,
        query.start,
        query.end,
        query.limit + 1,
    )
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return {
        "payments": [_payment_row(row) for row in rows],
        "next_cursor": _cursor(rows[-1]) if more else None,
    }


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_END = datetime(9999, 12, 31, tzinfo=UTC)


def _cursor(row: asyncpg.Record) -> str:
    micros = (row["created_at"] - _EPOCH) // ONE_TICK
    return cursors.encode_pair(CURSOR_TAG, micros, row["transfer_id"])


def _position(cursor: str | None) -> tuple[datetime, int]:
    """The (created_at, transfer id) a cursor names; past everything without one."""
    if cursor is None:
        return _END, 2**62
    micros, transfer = cursors.decode_pair(CURSOR_TAG, cursor)
    try:
        return _EPOCH + micros * ONE_TICK, transfer
    except OverflowError:
        raise ValidationFailed("cursor is not one this API gave out", field="cursor") from None


def _payment_row(row: asyncpg.Record) -> dict[str, Any]:
    currency, amount, fee = row["currency"], row["amount_minor"], row["fee_minor"]
    return {
        "payment_id": str(row["id"]),
        "status": row["status"],
        "amount": format_amount(amount, currency),
        "fee": format_amount(fee, currency),
        "net": format_amount(amount - fee, currency),
        "refunded": format_amount(row["refunded_minor"], currency),
        "currency": currency,
        "payer": row["payer"],
        "session_id": str(row["session_id"]) if row["session_id"] else None,
        "note": row["note"],
        "created_at": row["created_at"].isoformat(),
    }


async def read_merchant_history(
    pool: asyncpg.Pool, merchant: Merchant, query: HistoryQuery
) -> dict[str, Any]:
    """One page of the merchant account's history, as a person's wallet history reads
    (wallet.history), each payment and refund naming its payer."""
    return await read_account_history(pool, merchant.account_id, query, PAYER)


async def merchant_balance(pool: asyncpg.Pool, merchant: Merchant) -> dict[str, Any]:
    """The merchant account's balance as its owner reads it: posted, available (less what
    payouts on their way hold) and pending in (payments a risk review holds)."""
    account = await get_account(pool, merchant.account_id)
    currency = account.currency
    return {
        "currency": currency,
        "balance": format_amount(account.posted_minor, currency),
        "available_balance": format_amount(
            account.posted_minor - account.pending_debits_minor, currency
        ),
        "pending_balance": format_amount(account.pending_credits_minor, currency),
    }


# --- the settlement report ----------------------------------------------------------------------

SETTLEMENT_COLUMNS = (
    "merchant_id",
    "merchant_name",
    "type",
    "id",
    "payment_id",
    "moved_at",
    "currency",
    "gross",
    "fee",
    "net",
)
_SETTLED_PAYMENTS = """
SELECT m.id AS merchant_id, m.name AS merchant_name, 'payment' AS type, p.id, p.id AS payment_id,
       coalesce(p.decided_at, p.created_at) AS moved_at, p.currency,
       p.amount_minor AS gross, p.fee_minor AS fee
  FROM merchant_payments p JOIN merchants m ON m.id = p.merchant_id
 WHERE p.status = 'COMPLETED'
   AND coalesce(p.decided_at, p.created_at) >= $1 AND coalesce(p.decided_at, p.created_at) < $2
UNION ALL
SELECT m.id, m.name, 'refund', r.id, r.payment_id, r.completed_at, r.currency,
       -r.amount_minor, 0
  FROM merchant_refunds r JOIN merchants m ON m.id = r.merchant_id
 WHERE r.status = 'COMPLETED' AND r.completed_at >= $1 AND r.completed_at < $2
 ORDER BY merchant_id, moved_at, id
"""


@dataclass
class Totals:
    payments: int = 0
    refunds: int = 0
    gross: int = 0
    fee: int = 0


async def write_settlement(pool: asyncpg.Pool, day: date, out: Path) -> dict[uuid.UUID, Totals]:
    """Write a day's (UTC) settlement report as CSV to `out`: each payment completed and each
    refund made that day, by merchant, then a `total` row for each merchant and currency (gross
    less fees is what the merchant account was credited; refunds are negative gross, with no
    fee: the fee is not refunded, merchants.refunds). The totals by merchant."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    rows = await pool.fetch(_SETTLED_PAYMENTS, start, start + timedelta(days=1))
    totals: dict[tuple[uuid.UUID, str, str], Totals] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    draft = out.with_name(out.name + ".part")
    with draft.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(SETTLEMENT_COLUMNS)
        for row in rows:
            writer.writerow(_settlement_line(row))
            total = totals.setdefault(
                (row["merchant_id"], row["merchant_name"], row["currency"]), Totals()
            )
            total.gross += row["gross"]
            total.fee += row["fee"]
            if row["type"] == "payment":
                total.payments += 1
            else:
                total.refunds += 1
        for line in _total_lines(totals):
            writer.writerow(line)
    draft.replace(out)
    return {merchant: total for (merchant, _, _), total in totals.items()}


def _settlement_line(row: asyncpg.Record) -> list[str]:
    currency = row["currency"]
    return [
        str(row["merchant_id"]),
        _cell(row["merchant_name"]),
        row["type"],
        str(row["id"]),
        str(row["payment_id"]),
        row["moved_at"].isoformat(),
        currency,
        _signed(row["gross"], currency),
        format_amount(row["fee"], currency),
        _signed(row["gross"] - row["fee"], currency),
    ]


def _total_lines(totals: dict[tuple[uuid.UUID, str, str], Totals]) -> Iterator[list[str]]:
    for (merchant, name, currency), total in totals.items():
        yield [
            str(merchant),
            _cell(name),
            "total",
            f"payments: {total.payments}; refunds: {total.refunds}",
            "",
            "",
            currency,
            _signed(total.gross, currency),
            format_amount(total.fee, currency),
            _signed(total.gross - total.fee, currency),
        ]


def _cell(text: str) -> str:
    """Text a spreadsheet will not take for a formula (a merchant's name is the merchant's to
    choose): one that starts with = + - @ is led by an apostrophe (OWASP's CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _signed(minor: int, currency: str) -> str:
    return ("-" if minor < 0 else "") + format_amount(abs(minor), currency)
