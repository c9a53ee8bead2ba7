"""The sandbox bank partner and card processor (BILLFOLD_SANDBOX; on by default when embedded).

The bank partner's events travel the same path as the real partner's (funding.sandbox).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from billfold.api.fields import UuidPath
from billfold.api.identity import CurrentUser
from billfold.api.inputs import Body, InputRoute
from billfold.api.problems import problem_responses
from billfold.api.views import DeliveryOut
from billfold.funding import sandbox
from billfold.funding.cards import SandboxProcessor
from billfold.platform.errors import NotFound, ValidationFailed

router = APIRouter(prefix="/api/v1/sandbox", tags=["sandbox"], route_class=InputRoute)


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
    funding = request.app.state.funding
    return await sandbox.deliver_event(funding, user.id, "ach.settled", funding_id)


@router.post("/ach/{funding_id}/return", response_model=DeliveryOut, responses=_DELIVERY_ERRORS)
async def return_(request: Request, funding_id: UuidPath, body: ReturnIn, user: CurrentUser) -> Any:
    """The bank returns the ACH transfer with a NACHA return code (`ach.returned`)."""
    return await sandbox.deliver_event(
        request.app.state.funding,
        user.id,
        "ach.returned",
        funding_id,
        return_code=body.return_code,
    )


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
    funding = request.app.state.funding
    return await sandbox.deliver_event(funding, user.id, "card.chargeback", funding_id)
