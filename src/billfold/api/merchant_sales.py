"""A merchant's sales: refunds (its server, with its key), its payments and its account's
history (its key, or its owner's token)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from billfold.api.fields import (
    Amount,
    Cursor,
    HistoryParams,
    IdempotencyKeyHeader,
    MomentFrom,
    MomentTo,
    UuidPath,
)
from billfold.api.identity import CurrentMerchant, MerchantOfCaller
from billfold.api.inputs import Body, InputRoute
from billfold.api.limits import limit_merchant
from billfold.api.problems import problem_responses
from billfold.api.views import HistoryOut
from billfold.ledger.errors import IdempotencyKeyReused, InsufficientFunds, LedgerBusy
from billfold.merchants import refunds, sales
from billfold.platform.errors import NotFound, ValidationFailed
from billfold.wallet.history import parse_moment
from billfold.wallet.money import InvalidAmount

router = APIRouter(prefix="/api/v1", tags=["merchants"], route_class=InputRoute)


class RefundIn(Body):
    amount: Amount | None = Field(
        default=None, description="Unset: all that is left of the payment to refund."
    )
    reason: Annotated[
        str | None, Field(json_schema_extra={"maxLength": refunds.MAX_REASON_LENGTH})
    ] = None


class RefundOut(BaseModel):
    refund_id: str
    payment_id: str
    amount: str
    currency: str
    status: str = Field(description="COMPLETED; FAILED for a refund the ledger refused")
    reason: str | None
    created_at: str


class PaymentRow(BaseModel):
    payment_id: str
    status: str
    amount: str = Field(description="What the payer paid.")
    fee: str = Field(description="The merchant's fee, taken from amount.")
    net: str = Field(description="What the merchant account was credited: amount less fee.")
    refunded: str
    currency: str
    payer: str | None = Field(description="The payer's username.")
    session_id: str | None
    note: str | None
    created_at: str


class PaymentsOut(BaseModel):
    payments: list[PaymentRow]
    next_cursor: str | None


@router.post(
    "/payments/{payment_id}/refunds",
    status_code=201,
    response_model=RefundOut,
    dependencies=[Depends(limit_merchant)],
    responses=problem_responses(
        NotFound,
        ValidationFailed,
        InvalidAmount,
        InsufficientFunds,
        IdempotencyKeyReused,
        refunds.PaymentNotRefundable,
        refunds.RefundExceedsPayment,
        LedgerBusy,
    ),
)
async def refund_payment(
    request: Request,
    response: Response,
    payment_id: UuidPath,
    body: RefundIn,
    merchant: CurrentMerchant,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Refund a payment to the merchant, in full (no `amount`) or in part; several partial
    refunds may follow, never more than the payment altogether. The money comes from the
    merchant account (422 `insufficient_funds` if it lacks it); the fee is not refunded."""
    state = request.app.state
    wanted = refunds.RefundRequest(payment_id, body.amount, body.reason, idempotency_key)
    checked = refunds.check_refund(merchant, wanted)
    view, replayed = await refunds.do_refund(state.pool, state.ledger, checked)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return view


@router.get(
    "/payments/{payment_id}/refunds",
    response_model=list[RefundOut],
    responses=problem_responses(NotFound),
)
async def list_refunds(request: Request, payment_id: UuidPath, merchant: CurrentMerchant) -> Any:
    """The payment's refunds, oldest first."""
    return await refunds.list_refunds(request.app.state.pool, merchant, payment_id)


@router.get(
    "/merchants/{merchant_id}/payments",
    response_model=PaymentsOut,
    responses=problem_responses(NotFound, ValidationFailed),
)
async def list_payments(
    request: Request,
    merchant: MerchantOfCaller,
    status: Annotated[
        str | None,
        Query(max_length=32, json_schema_extra={"enum": list(sales.PAYMENT_STATUSES)}),
    ] = None,
    from_: MomentFrom = None,
    to: MomentTo = None,
    limit: Annotated[int, Query(ge=1, le=sales.MAX_LIMIT)] = 50,
    cursor: Cursor = None,
) -> Any:
    """The merchant's payments, newest first, for its key or its owner; filters combine;
    `next_cursor` pages on."""
    query = sales.PaymentsQuery(
        status=status,
        start=parse_moment(from_, "from", end_of_day=False)[0] if from_ else None,
        end=_end(to),
        limit=limit,
        cursor=cursor,
    )
    return await sales.list_payments(request.app.state.pool, merchant, query)


@router.get(
    "/merchants/{merchant_id}/transactions",
    response_model=HistoryOut,
    responses=problem_responses(NotFound, ValidationFailed, InvalidAmount),
)
async def merchant_transactions(
    request: Request, merchant: MerchantOfCaller, query: HistoryParams
) -> Any:
    """The merchant account's history, as a wallet's reads: payments in and refunds out, each
    naming the payer, and payouts; `balance` is the merchant account's."""
    return await sales.read_merchant_history(request.app.state.pool, merchant, query)


def _end(to: str | None) -> Any:
    """`to` as an exclusive bound: a date runs to its next midnight; a moment is included (one
    microsecond on)."""
    if to is None:
        return None
    moment, inclusive = parse_moment(to, "to", end_of_day=True)
    return moment + sales.ONE_TICK if inclusive else moment
