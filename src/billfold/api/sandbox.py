"""The sandbox bank partner and card processor (BILLFOLD_SANDBOX; on by default when embedded).

The bank partner's events travel the same path as the real partner's: a Standard Webhooks
delivery signed with the partner secret, verified and applied by funding.webhooks.receive.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from billfold.api.fields import UuidPath
from billfold.api.funding import DeliveryOut, funding_of
from billfold.api.identity import CurrentUser
from billfold.api.inputs import Body, InputRoute
from billfold.api.problems import problem_responses
from billfold.funding import rails, webhooks
from billfold.funding.cards import SandboxProcessor
from billfold.funding.service import Funding
from billfold.platform.errors import NotFound, ValidationFailed
from billfold.platform.logging import get_logger

router = APIRouter(prefix="/api/v1/sandbox", tags=["sandbox"], route_class=InputRoute)
log = get_logger("billfold.sandbox")


class ReturnIn(Body):
    return_code: str = Field(
        max_length=8,
        description="A NACHA return code, e.g. R01.",
        json_schema_extra={"pattern": "^R[0-9]{2}$"},
    )


class TokenizeIn(Body):
    number: str = Field(
        max_length=32,
        description="12 to 19 digits, their Luhn check digit right.",
        json_schema_extra={"pattern": "^[0-9]{12,19}$"},
    )
    exp_month: int = Field(json_schema_extra={"minimum": 1, "maximum": 12})
    exp_year: int = Field(description="This year or one of the next 20 (not past).")
    cvc: str = Field(max_length=8, json_schema_extra={"pattern": "^[0-9]{3,4}$"})


class TokenOut(BaseModel):
    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


# A movement of someone else's, or of another rail, is as unknown as one that does not exist.
_DELIVERY_ERRORS = problem_responses(NotFound, ValidationFailed)


@router.post("/ach/{funding_id}/settle", response_model=DeliveryOut, responses=_DELIVERY_ERRORS)
async def settle(request: Request, funding_id: UuidPath, user: CurrentUser) -> Any:
    """The bank reports the ACH transfer settled (a signed `ach.settled` webhook)."""
    await _own(request, user.id, funding_id, "ach")
    return await _deliver(funding_of(request), "ach.settled", {"transfer_id": funding_id})


@router.post("/ach/{funding_id}/return", response_model=DeliveryOut, responses=_DELIVERY_ERRORS)
async def return_(request: Request, funding_id: UuidPath, body: ReturnIn, user: CurrentUser) -> Any:
    """The bank returns the ACH transfer with a NACHA return code (`ach.returned`)."""
    await _own(request, user.id, funding_id, "ach")
    data = {"transfer_id": funding_id, "return_code": body.return_code}
    return await _deliver(funding_of(request), "ach.returned", data)


@router.post(
    "/cards/tokenize",
    response_model=TokenOut,
    status_code=201,
    responses=problem_responses(ValidationFailed),
)
async def tokenize(request: Request, body: TokenizeIn, user: CurrentUser) -> Any:
    """What the app does with the card processor. 4000000000000002 declines;
    4000000000009995 fails for insufficient funds; other valid numbers approve. The token is
    the caller's: to anyone else it is unknown."""
    processor: SandboxProcessor = request.app.state.cards
    return await processor.tokenize(user.id, body.number, body.exp_month, body.exp_year, body.cvc)


@router.post(
    "/cards/{funding_id}/chargeback", response_model=DeliveryOut, responses=_DELIVERY_ERRORS
)
async def chargeback(request: Request, funding_id: UuidPath, user: CurrentUser) -> Any:
    """The cardholder disputes a card add-funds (`card.chargeback`)."""
    await _own(request, user.id, funding_id, "card")
    return await _deliver(funding_of(request), "card.chargeback", {"transfer_id": funding_id})


async def _deliver(funding: Funding, event_type: str, data: dict[str, Any]) -> dict[str, str]:
    headers, body = webhooks.sign(
        webhooks.webhook_secret(funding.settings), {"type": event_type, "data": data}
    )
    delivery = await webhooks.receive(funding, headers, body)
    return {"status": delivery.status, "detail": delivery.detail}


async def _own(request: Request, user_id: Any, transfer_id: str, rail: str) -> None:
    ft = await rails.load(request.app.state.pool, transfer_id)
    if ft is None or ft.user_id != user_id or ft.rail != rail:
        raise NotFound(
            f"transfer '{transfer_id[:40]}' does not exist", transfer_id=transfer_id[:40]
        )


async def auto_settle(funding: Funding, after_s: float) -> None:
    """Settle every pending ACH transfer `after_s` seconds after it started, as a bank would
    some days later; one the risk engine holds was never sent, so it waits until released.
    Runs in each process; the inbox and the ledger keys make that safe."""
    while True:
        await asyncio.sleep(min(after_s, 5.0))
        try:
            rows = await funding.pool.fetch(
                """SELECT id FROM funding_transfers
                    WHERE rail = 'ach' AND status = 'pending' AND risk_status IS NULL
                      AND created_at < now() - make_interval(secs => $1)
                    ORDER BY created_at LIMIT 500""",
                after_s,
            )
            for row in rows:
                await _deliver(funding, "ach.settled", {"transfer_id": str(row["id"])})
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("sandbox auto-settle failed", error=str(error))
