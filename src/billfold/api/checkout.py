"""Checkout sessions: what a merchant's server (its API key) asks to be paid."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from billfold.api.fields import Amount, IdempotencyKeyHeader, IdempotencyKeyIn, UuidPath
from billfold.api.identity import CurrentMerchant
from billfold.api.inputs import Body, InputRoute
from billfold.api.limits import limit_merchant
from billfold.api.problems import problem_responses
from billfold.ledger.errors import IdempotencyKeyReused
from billfold.merchants import checkout
from billfold.merchants.profiles import MerchantSuspended
from billfold.platform.errors import NotFound, ValidationFailed
from billfold.wallet.money import InvalidAmount

router = APIRouter(
    prefix="/api/v1",
    tags=["checkout"],
    route_class=InputRoute,
    dependencies=[Depends(limit_merchant)],
)

Reference = Annotated[
    str | None,
    Field(
        max_length=checkout.MAX_REFERENCE,
        description="The merchant's own reference (an order number): shown back, never to "
        "the payer.",
        json_schema_extra={"minLength": 1},
    ),
]
ExpiresIn = Annotated[
    Any,
    # Any JSON value: the context judges it, naming expires_in_s, as the amount is judged.
    Field(
        default=None,
        description=f"Seconds the session stays open (default {checkout.EXPIRES_IN_S_DEFAULT}).",
        json_schema_extra={
            "type": "integer",
            "minimum": checkout.EXPIRES_IN_S_MIN,
            "maximum": checkout.EXPIRES_IN_S_MAX,
        },
    ),
]


class SessionIn(Body):
    amount: Amount
    reference: Reference = None
    expires_in_s: ExpiresIn
    idempotency_key: IdempotencyKeyIn = None


class SessionOut(BaseModel):
    session_id: str
    merchant_id: str
    status: str = Field(description="open, paid, expired or canceled")
    amount: str
    currency: str
    reference: str | None
    qr_payload: str = Field(
        description="The dynamic EMVCo QR code (merchant-presented) a payer scans."
    )
    expires_at: str
    payment_id: str | None = Field(description="The payment that paid it.")
    created_at: str
    closed_at: str | None


@router.post(
    "/checkout/sessions",
    status_code=201,
    response_model=SessionOut,
    responses=problem_responses(
        ValidationFailed, InvalidAmount, IdempotencyKeyReused, MerchantSuspended
    ),
)
async def create_session(
    request: Request,
    response: Response,
    body: SessionIn,
    merchant: CurrentMerchant,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Open a session for an amount to be paid once, in your app or by its QR code, before it
    expires. Retries with the same Idempotency-Key and body get the same session (with
    `Idempotent-Replayed: true`)."""
    new = checkout.check_create_session(
        merchant,
        body.amount,
        body.reference,
        body.expires_in_s,
        idempotency_key or body.idempotency_key,
    )
    view, replayed = await checkout.do_create_session(request.app.state.pool, merchant, new)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return view


@router.get(
    "/checkout/sessions/{session_id}",
    response_model=SessionOut,
    responses=problem_responses(NotFound),
)
async def get_session(request: Request, session_id: UuidPath, merchant: CurrentMerchant) -> Any:
    """One of your sessions, as it stands (one whose time is up is expired)."""
    return await checkout.show_session(request.app.state.pool, merchant, session_id)


@router.post(
    "/checkout/sessions/{session_id}/cancel",
    response_model=SessionOut,
    responses=problem_responses(NotFound, checkout.SessionNotOpen),
)
async def cancel_session(request: Request, session_id: UuidPath, merchant: CurrentMerchant) -> Any:
    """Cancel an open session: it can no longer be paid. A paid or expired one, or one a payer
    is paying, is a 409; a canceled one is answered as it is."""
    return await checkout.do_cancel_session(request.app.state.pool, merchant, session_id)
