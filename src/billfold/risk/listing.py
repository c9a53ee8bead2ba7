"""Every decision of the risk engine, for operators: each assessment with its verdict, score,
model version, reasons and top features, newest first, filtered and paged by a cursor.

The order is (created_at, id), newest first: the id breaks ties in time, and the cursor is the
position of a page's last row in that order, so that paging shows each row once even while
new ones arrive (they sort before the first page). Each filter combination reads an index in
that order (migration 0018), never the whole table.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from billfold.platform import db
from billfold.platform.errors import ValidationFailed
from billfold.platform.strict import ascii_digits
from billfold.risk.explain import EXPLAINED_COLUMNS, NotExplainable, explain_row
from billfold.risk.rules import Action

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
# A page whose missing top features are computed again (`explain`): about 4 ms a row.
EXPLAIN_MAX_LIMIT = 50
VERDICTS = tuple(action.value for action in Action)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# An explanation's columns too, so that `explain` reads each row once.
_COLUMNS = f"""id, reasons, aml, top_features, declined_later, {EXPLAINED_COLUMNS}"""


@dataclass(frozen=True)
class AssessmentQuery:
    user_id: uuid.UUID | None = None
    verdict: str | None = None
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # inclusive
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    explain: bool = False  # compute the top features of rows that have none stored


def check_assessment_query(query: AssessmentQuery) -> tuple[datetime, int] | None:
    """Refuses a query no page can answer, naming the value; the cursor's position, if any."""
    if query.verdict is not None and query.verdict not in VERDICTS:
        raise ValidationFailed(
            f"verdict '{query.verdict[:40]}' is not one of {', '.join(VERDICTS)}",
            field="verdict",
            value=query.verdict[:40],
        )
    if not 1 <= query.limit <= MAX_LIMIT:
        raise ValidationFailed(
            f"limit {query.limit} must be 1 to {MAX_LIMIT}", field="limit", value=query.limit
        )
    if query.explain and query.limit > EXPLAIN_MAX_LIMIT:
        raise ValidationFailed(
            f"limit {query.limit} must be at most {EXPLAIN_MAX_LIMIT} with explain",
            field="limit",
            value=query.limit,
        )
    if query.start is not None and query.end is not None and query.start > query.end:
        raise ValidationFailed(
            f"from '{query.start.isoformat()}' is after to '{query.end.isoformat()}'",
            field="from",
            value=query.start.isoformat(),
        )
    return decode_cursor(query.cursor) if query.cursor is not None else None


def encode_cursor(created_at: datetime, assessment_id: int) -> str:
    micros = (created_at - EPOCH) // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"a{micros}.{assessment_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The position a cursor names: a page's last (created_at, id)."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("a") or len(text) > 40:
            raise ValueError(text)
        micros, _, assessment_id = text[1:].partition(".")
        # Each a bigint: 18 digits are always one.
        if not (ascii_digits(micros, 18) and ascii_digits(assessment_id, 18)):
            raise ValueError(text)
        return EPOCH + timedelta(microseconds=int(micros)), int(assessment_id)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed(
            f"cursor '{cursor[:40]}' is not one this API gave out",
            field="cursor",
            value=cursor[:40],
        ) from None


def _statement(
    query: AssessmentQuery, position: tuple[datetime, int] | None
) -> tuple[str, list[Any]]:
    """The listing's SQL for the filters given, and its arguments: each filter present is a
    condition, and none is an `$n IS NULL OR ...`, which a generic plan could not read an
    index for. No value goes into the text."""
    conditions: list[str] = []
    args: list[Any] = []

    def where(condition: str, *values: Any) -> None:
        args.extend(values)
        numbers = range(len(args) - len(values) + 1, len(args) + 1)
        conditions.append(condition.format(*(f"${n}" for n in numbers)))

    if query.user_id is not None:
        where("user_id = {}", query.user_id)
    if query.verdict is not None:
        where("action = {}", query.verdict)
        if query.verdict != Action.ALLOW:
            # Implied, and stated, so that any plan may read the partial index of the rare
            # verdicts (migration 0018).
            where("action <> 'allow'")
    if query.start is not None:
        where("created_at >= {}", query.start)
    if query.end is not None:
        where("created_at <= {}", query.end)
    if position is not None:
        where("(created_at, id) < ({}, {})", *position)
    args.append(query.limit + 1)
    sql = f"""SELECT {_COLUMNS}
  FROM risk_assessments
 WHERE {" AND ".join(conditions) or "true"}
 ORDER BY created_at DESC, id DESC
 LIMIT ${len(args)}"""
    return sql, args


async def list_assessments(
    pool: asyncpg.Pool, query: AssessmentQuery, engine: object = None
) -> dict[str, Any]:
    """One page of assessments, newest first, and the cursor of the next (None on the last).
    With `query.explain`, rows that have no top features stored (allowed ones) get them
    computed again by `engine` (risk.explain), where the loaded model scored them."""
    sql, args = _statement(query, check_assessment_query(query))
    rows = await db.fetch(pool, sql, *args)
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    views = [_view(row) for row in rows]
    if query.explain:
        for view, row in zip(views, rows, strict=True):
            if view["top_features"] or view["model_version"] is None:
                continue
            try:
                explained = await explain_row(engine, row["id"], row)
            except NotExplainable:
                continue  # another model's: nothing to say of it now
            view["top_features"] = explained["top_features"]
            view["top_features_recomputed"] = True
    return {
        "assessments": views,
        "next_cursor": encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None,
    }


def _view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "assessment_id": row["id"],
        "user_id": str(row["user_id"]),
        "kind": row["kind"],
        "counterparty_id": str(row["counterparty_id"]) if row["counterparty_id"] else None,
        "amount_minor": row["amount_minor"],
        "verdict": row["action"],
        "score": row["score"],
        "model_version": row["model_version"],
        "reasons": list(row["reasons"]),
        "top_features": row["top_features"] or [],
        "top_features_recomputed": False,
        "reports": list(row["aml"]),
        "declined_later": row["declined_later"],
        "created_at": row["created_at"].isoformat(),
    }
