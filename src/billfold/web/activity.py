"""What happened in a wallet: its history (the API's filters and text search, keyset pages,
a CSV of every matching row) and the person's notifications.

The history's filters are the query string of GET /api/v1/wallet/{id}/transactions, read here
so that a bad one is told on the filter form (an empty field of a GET form is no filter). Paging
goes on by the context's cursor; going back, by the cursors of the pages before, which the
links carry (`back`: a bounded list, newest last)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from billfold.api.inputs import InputRoute
from billfold.notifications import feed
from billfold.platform.currency import WALLET_CURRENCY
from billfold.platform.errors import BillfoldError
from billfold.wallet.history import (
    MAX_LIMIT,
    STATUSES,
    TYPES,
    HistoryQuery,
    check_history_query,
    parse_moment,
    read_history,
)
from billfold.wallet.money import parse_amount
from billfold.wallet.users import User
from billfold.web import pages
from billfold.web.identity import Poster, WebUser

router = APIRouter(route_class=InputRoute, include_in_schema=False)

PAGE_SIZE = 25
# How many earlier pages a "previous" link can go back through (their cursors ride in the URL).
BACK_MAX = 20
CURSOR_MAX = 200
# A CSV export reads pages of CSV_PAGE rows, at most CSV_MAX_PAGES of them (a million rows).
CSV_PAGE = MAX_LIMIT
CSV_MAX_PAGES = 5000
CSV_COLUMNS = (
    "id",
    "time",
    "type",
    "direction",
    "amount",
    "fee",
    "total",
    "currency",
    "counterparty",
    "status",
    "note",
)
# The filter form's fields, as the API's query string names them.
FILTERS = ("from", "to", "type", "direction", "status", "min_amount", "max_amount")
TEXT_FIELDS = ("counterparty", "q")
FIELD_MAX = 100


def history_filters(request: Request) -> dict[str, Any]:
    """The filters the query string gives, as the form shows them (every value a string, `type`
    a list); empty fields dropped."""
    params = request.query_params
    found: dict[str, Any] = {}
    for name in (*FILTERS, *TEXT_FIELDS):
        if name == "type":
            kinds = [k[:FIELD_MAX] for k in params.getlist("type") if k][: len(TYPES)]
            if kinds:
                found["type"] = kinds
        elif params.get(name, "").strip():
            found[name] = params[name].strip()[:FIELD_MAX]
    return found


def history_query(filters: dict[str, Any], limit: int, cursor: str | None) -> HistoryQuery:
    """The context's query for the filters (as api.fields.history_query reads them)."""
    raw_from, raw_to = filters.get("from"), filters.get("to")
    start = parse_moment(raw_from, "from", end_of_day=False)[0] if raw_from else None
    end, end_inclusive = parse_moment(raw_to, "to", end_of_day=True) if raw_to else (None, True)
    query = HistoryQuery(
        start=start,
        end=end,
        end_inclusive=end_inclusive,
        types=tuple(filters.get("type", ())),
        direction=filters.get("direction"),
        status=filters.get("status"),
        min_amount_minor=_amount(filters, "min_amount"),
        max_amount_minor=_amount(filters, "max_amount"),
        counterparty=filters.get("counterparty"),
        text=filters.get("q"),
        limit=limit,
        cursor=cursor,
    )
    check_history_query(query)
    return query


def _amount(filters: dict[str, Any], name: str) -> int | None:
    raw = filters.get(name)
    return None if raw is None else parse_amount(raw, WALLET_CURRENCY, name)


def _query_string(filters: dict[str, Any], **more: str) -> str:
    pairs: list[tuple[str, str]] = []
    for name, value in filters.items():
        pairs.extend((name, v) for v in (value if isinstance(value, list) else [value]))
    pairs.extend((k, v) for k, v in more.items() if v)
    return urlencode(pairs)


@router.get("/app/history")
async def history(request: Request, user: WebUser, cursor: str = "", back: str = "") -> Response:
    """A page of the person's history, newest first, with the filter form and the pager."""
    filters = history_filters(request)
    trail = [c[:CURSOR_MAX] for c in back.split(",")][-BACK_MAX:] if back else []
    context: dict[str, Any] = {
        "filters": filters,
        "types": TYPES,
        "statuses": STATUSES,
        "csv_link": "/app/history.csv?" + _query_string(filters),
    }
    try:
        query = history_query(filters, PAGE_SIZE, cursor[:CURSOR_MAX] or None)
        found = await request.app.state.reads.run(user.account_id, read_history, user, query)
    except BillfoldError as error:
        return pages.render(
            request, "wallet/history.html", status=error.status, error=error, rows=[], **context
        )
    nxt = found["next_cursor"]
    more_back = ",".join([*trail, cursor][-BACK_MAX:])
    context["next_link"] = (
        "/app/history?" + _query_string(filters, cursor=nxt, back=more_back) if nxt else None
    )
    if cursor:
        previous = trail[-1] if trail else ""
        context["previous_link"] = "/app/history?" + _query_string(
            filters, cursor=previous, back=",".join(trail[:-1])
        )
    return pages.render(request, "wallet/history.html", rows=found["transactions"], **context)


@router.get("/app/history.csv")
async def history_csv(request: Request, user: WebUser) -> Response:
    """Every row the filters match, as CSV, read page by page with the history's keyset read
    and sent as it is read. A bad filter is refused before the first byte."""
    filters = history_filters(request)
    query = history_query(filters, CSV_PAGE, None)
    first = await request.app.state.reads.run(user.account_id, read_history, user, query)
    response = StreamingResponse(
        _csv_lines(request, user, query, first),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="billfold-history.csv"'},
    )
    return pages.harden(request, response)


async def _csv_lines(
    request: Request, user: User, query: HistoryQuery, page: dict[str, Any]
) -> AsyncIterator[str]:
    yield _csv_row(CSV_COLUMNS)
    for _ in range(CSV_MAX_PAGES):
        rows = page["transactions"]
        yield "".join(_csv_row([_csv_cell(row, c) for c in CSV_COLUMNS]) for row in rows)
        if not page["next_cursor"]:
            return
        query = replace(query, cursor=page["next_cursor"])
        page = await request.app.state.reads.run(user.account_id, read_history, user, query)


def _csv_cell(row: dict[str, Any], column: str) -> str:
    value = row.get("timestamp" if column == "time" else column)
    return inert("" if value is None else str(value))


def _csv_row(cells: Any) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()


def inert(text: str) -> str:
    """Text a spreadsheet will not take for a formula (a note or a name is a person's to
    choose): one that starts with = + - @ tab or CR is led by an apostrophe (OWASP's CSV
    injection), as the merchants' settlement CSV writes it."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# --- notifications ----------------------------------------------------------------------------


@router.get("/app/notifications")
async def notifications(request: Request, user: WebUser, cursor: str = "") -> Response:
    """The person's notifications, newest first (as GET /api/v1/notifications)."""
    query = feed.FeedQuery(limit=feed.DEFAULT_LIMIT, cursor=cursor[:CURSOR_MAX] or None)
    found = await feed.read_feed(request.app.state.pool, user.id, query)
    return pages.render(request, "wallet/notifications.html", feed=found, paged=bool(cursor))


@router.post("/app/notifications/read")
async def mark_read(
    request: Request,
    user: Poster,
    ids: Annotated[str, Form(max_length=FIELD_MAX)] = "",
    up_to: Annotated[str, Form(max_length=FIELD_MAX)] = "",
) -> Response:
    """Mark one notification read (`ids`), or one and every older one (`up_to`), as
    POST /api/v1/notifications/read does."""
    mark = feed.check_mark_read([ids] if ids else None, up_to or None)
    await feed.do_mark_read(request.app.state.pool, user.id, mark)
    return pages.harden(request, RedirectResponse("/app/notifications", status_code=303))
