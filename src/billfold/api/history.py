"""A wallet's transaction history, searchable and paged."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request

from billfold.api.fields import HistoryParams
from billfold.api.identity import CurrentUser
from billfold.api.inputs import InputRoute
from billfold.api.problems import problem_responses
from billfold.api.views import HistoryOut
from billfold.platform.errors import NotFound, ValidationFailed
from billfold.platform.replica import Reads
from billfold.wallet.history import read_history
from billfold.wallet.money import InvalidAmount

router = APIRouter(prefix="/api/v1", tags=["wallet"], route_class=InputRoute)


@router.get(
    "/wallet/{user_id:uuid}/transactions",
    response_model=HistoryOut,
    responses=problem_responses(NotFound, ValidationFailed, InvalidAmount),
)
async def transactions(
    request: Request, user_id: uuid.UUID, user: CurrentUser, query: HistoryParams
) -> dict[str, Any]:
    """The caller's transactions, newest first. Filters combine; `next_cursor` pages on."""
    if user_id != user.id:
        raise NotFound(f"wallet '{user_id}' does not exist", user_id=str(user_id))
    # From the replica once it holds the caller's last movement (platform.replica).
    reads: Reads = request.app.state.reads
    return await reads.run(user.account_id, read_history, user, query)
