"""A wallet's transaction history, searchable and paged."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from billfold.api.identity import CurrentUser
from billfold.api.inputs import InputRoute
from billfold.platform.currency import WALLET_CURRENCY
from billfold.platform.errors import NotFound
from billfold.wallet.history import HistoryQuery, parse_moment, read_history
from billfold.wallet.money import MAX_AMOUNT_CHARS, amount_pattern, parse_amount


def _amount_query() -> Any:
    """An amount parameter. Its pattern is documented, not enforced here: parse_amount refuses
    a bad amount itself, as `invalid_amount` naming it, like every amount in the API."""
    return Query(
        max_length=MAX_AMOUNT_CHARS,
        json_schema_extra={"pattern": amount_pattern(WALLET_CURRENCY)},
        description="An amount in dollars, like '12.50'.",
    )


router = APIRouter(prefix="/api/v1", tags=["wallet"], route_class=InputRoute)


class HistoryItem(BaseModel):
    id: str
    type: str
    direction: str
    amount: str
    fee: str = Field(description="what the movement cost on top of amount (a card's fee)")
    total: str = Field(description="amount plus fee: for a card add-funds, what the card paid")
    currency: str
    counterparty: str | None
    timestamp: str
    status: str
    note: str | None


class HistoryOut(BaseModel):
    transactions: list[HistoryItem]
    balance: str
    next_cursor: str | None


@router.get("/wallet/{user_id:uuid}/transactions", response_model=HistoryOut)
async def transactions(
    request: Request,
    user_id: uuid.UUID,
    user: CurrentUser,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
    type_: Annotated[list[str] | None, Query(alias="type", max_length=20)] = None,
    direction: Annotated[str | None, Query(max_length=3)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    min_amount: Annotated[str | None, _amount_query()] = None,
    max_amount: Annotated[str | None, _amount_query()] = None,
    counterparty: Annotated[str | None, Query(max_length=254)] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """The caller's transactions, newest first. Filters combine; `next_cursor` pages on."""
    if user_id != user.id:
        raise NotFound(f"wallet '{user_id}' does not exist", user_id=str(user_id))
    start = parse_moment(from_, "from", end_of_day=False)[0] if from_ else None
    end, end_inclusive = parse_moment(to, "to", end_of_day=True) if to else (None, True)
    query = HistoryQuery(
        start=start,
        end=end,
        end_inclusive=end_inclusive,
        types=tuple(type_ or ()),
        direction=direction,
        status=status,
        min_amount_minor=_amount(min_amount, "min_amount"),
        max_amount_minor=_amount(max_amount, "max_amount"),
        counterparty=counterparty,
        text=q,
        limit=limit,
        cursor=cursor,
    )
    return await read_history(request.app.state.pool, user, query)


def _amount(raw: str | None, field: str) -> int | None:
    return None if raw is None else parse_amount(raw, WALLET_CURRENCY, field)
