"""The wallet at /app: a person's money."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from billfold.api.inputs import InputRoute
from billfold.wallet.history import HistoryQuery, read_history
from billfold.wallet.transfers import wallet_view
from billfold.web import pages
from billfold.web.identity import WebUser

router = APIRouter(route_class=InputRoute, include_in_schema=False)
RECENT = 10


@router.get("/app")
async def home(request: Request, user: WebUser) -> Response:
    """The balance, what is available and what is on its way; the last movements."""
    state = request.app.state
    wallet = await wallet_view(state.pool, state.balances, user)
    recent = await read_history(state.pool, user, HistoryQuery(limit=RECENT))
    return pages.render(request, "wallet/home.html", wallet=wallet, recent=recent["transactions"])
