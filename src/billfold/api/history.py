"""A wallet's transaction history, searchable and paged."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from billfold.api.fields import (
    AmountQuery,
    Cursor,
    Direction,
    HandleQuery,
    HistoryStatus,
    HistoryTypes,
    MomentFrom,
    MomentTo,
)
from billfold.api.identity import CurrentUser
from billfold.api.inputs import InputRoute
from billfold.api.problems import problem_responses
from billfold.platform.errors import NotFound, ValidationFailed
from billfold.wallet.history import (
    MAX_LIMIT,
    MAX_QUERY_LENGTH,
    HistoryQuery,
    parse_moment,
    read_history,
)
from billfold.wallet.money import InvalidAmount, parse_amount
from billfold.wallet.users import WALLET_CURRENCY

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


@router.get(
    "/wallet/{user_id:uuid}/transactions",
    response_model=HistoryOut,
    responses=problem_responses(NotFound, ValidationFailed, InvalidAmount),
)
async def transactions(
    request: Request,
    user_id: uuid.UUID,
    user: CurrentUser,
    from_: MomentFrom = None,
    to: MomentTo = None,
    type_: HistoryTypes = None,
    direction: Direction = None,
    status: HistoryStatus = None,
    min_amount: AmountQuery = None,
    max_amount: AmountQuery = None,
    counterparty: HandleQuery = None,
    q: Annotated[str | None, Query(max_length=MAX_QUERY_LENGTH)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Cursor = None,
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
