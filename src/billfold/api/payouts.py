"""A merchant's payouts to its owner's bank account, and its payout settings (the owner's token)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from billfold.api.fields import (
    ID_MAX,
    UUID,
    Amount,
    Cursor,
    IdempotencyKeyHeader,
    IdempotencyKeyIn,
    UuidPath,
)
from billfold.api.identity import CurrentUser
from billfold.api.inputs import Body, InputRoute
from billfold.api.limits import limit_money
from billfold.api.problems import problem_responses
from billfold.api.signals import RequestOrigin, risk_gate
from billfold.api.views import MerchantOut
from billfold.funding.service import BankAccountNotVerified, LimitExceeded
from billfold.ledger.errors import (
    DebtOutstanding,
    IdempotencyKeyReused,
    InsufficientFunds,
    LedgerBusy,
)
from billfold.merchants import payouts, profiles
from billfold.platform.errors import NotFound, ValidationFailed, WalletFrozen
from billfold.risk.gate import DeclinedByRisk, RiskUnavailable
from billfold.wallet.money import InvalidAmount

router = APIRouter(prefix="/api/v1", tags=["merchants"], route_class=InputRoute)

PayoutBank = Annotated[
    str,
    Field(
        max_length=ID_MAX,
        description="A verified bank account of yours (its id; never its number).",
        json_schema_extra=UUID,
    ),
]


class PayoutIn(Body):
    amount: Amount
    bank_account_id: PayoutBank
    idempotency_key: IdempotencyKeyIn = None


class PayoutOut(BaseModel):
    payout_id: str = Field(description="Also its transfer id: `GET /transfers/{id}` answers.")
    merchant_id: str
    amount: str
    currency: str
    status: str = Field(
        description="PENDING, COMPLETED (paid), RETURNED (the money is back in the merchant "
        "account), DECLINED, PENDING_VERIFICATION (confirm with your PIN at "
        "`POST /transfers/{payout_id}/verify`) or PENDING_REVIEW"
    )
    bank_account_id: str
    estimated_completion: str | None
    return_code: str | None
    created_at: str


class PayoutsOut(BaseModel):
    payouts: list[PayoutOut]
    next_cursor: str | None


class MerchantPatch(Body):
    """The payout settings to change; those left out stay as they are."""

    payout_schedule: Literal["manual", "daily"] | None = Field(
        default=None, description="daily: the whole available balance, once a day."
    )
    payout_bank_account_id: PayoutBank | None = Field(
        default=None, description="Where daily payouts go; null clears it (manual only)."
    )


@router.post(
    "/merchants/{merchant_id}/payouts",
    status_code=202,
    response_model=PayoutOut,
    dependencies=[Depends(limit_money)],
    responses=problem_responses(
        ValidationFailed,
        InvalidAmount,
        NotFound,
        BankAccountNotVerified,
        LimitExceeded,
        IdempotencyKeyReused,
        WalletFrozen,
        profiles.MerchantSuspended,
        InsufficientFunds,
        DebtOutstanding,
        DeclinedByRisk,
        RiskUnavailable,
        LedgerBusy,
    ),
)
async def create_payout(
    request: Request,
    response: Response,
    merchant_id: UuidPath,
    body: PayoutIn,
    user: CurrentUser,
    origin: RequestOrigin,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Pay the merchant's money out to a verified bank account of yours (an ACH credit): held
    in the merchant account at once, PENDING until it settles. More than the merchant account
    has available is 422 `insufficient_funds`, and nothing moves."""
    asked = payouts.PayoutAsked(
        merchant_id, body.amount, body.bank_account_id, idempotency_key or body.idempotency_key
    )
    state = request.app.state
    view, replayed = await payouts.request_payout(
        state.funding, risk_gate(request), user, asked, origin
    )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return view


@router.get(
    "/merchants/{merchant_id}/payouts",
    response_model=PayoutsOut,
    responses=problem_responses(NotFound, ValidationFailed),
)
async def list_payouts(
    request: Request,
    merchant_id: UuidPath,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=payouts.MAX_LIMIT)] = payouts.DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Any:
    """The merchant's payouts, newest first; `next_cursor` pages on."""
    pool = request.app.state.pool
    return await payouts.list_payouts(pool, user.id, merchant_id, limit, cursor)


@router.get(
    "/merchants/{merchant_id}/payouts/{payout_id}",
    response_model=PayoutOut,
    responses=problem_responses(NotFound),
)
async def get_payout(
    request: Request, merchant_id: UuidPath, payout_id: UuidPath, user: CurrentUser
) -> Any:
    pool = request.app.state.pool
    return await payouts.get_payout(pool, user.id, merchant_id, payout_id)


@router.patch(
    "/merchants/{merchant_id}",
    response_model=MerchantOut,
    responses=problem_responses(NotFound, ValidationFailed, BankAccountNotVerified),
)
async def update_merchant(
    request: Request, merchant_id: UuidPath, body: MerchantPatch, user: CurrentUser
) -> Any:
    """Change how the merchant is paid out: `daily` needs a verified bank account of yours
    (given here or set before)."""
    change = payouts.check_payout_settings(
        body.payout_schedule,
        body.payout_bank_account_id,
        "payout_bank_account_id" in body.model_fields_set,
    )
    merchant = await payouts.do_update_payout_settings(
        request.app.state.pool, user.id, merchant_id, change
    )
    return profiles.merchant_view(merchant)
