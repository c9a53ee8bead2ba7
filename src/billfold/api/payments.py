"""Paying merchants: a person pays a QR code or a checkout session; the payer and the merchant
look the payment up."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from billfold.api import direct
from billfold.api.fields import (
    ID_MAX,
    IDEMPOTENCY_HEADER,
    UUID,
    Amount,
    IdempotencyKeyIn,
    Note,
    UuidPath,
)
from billfold.api.identity import PersonOrMerchant, current_user
from billfold.api.inputs import Body, InputRoute
from billfold.api.limits import limit_money
from billfold.api.problems import MONEY_REFUSALS, problem_responses
from billfold.api.signals import COUNTRY_HEADER, DEVICE_HEADER, origin_of, risk_gate
from billfold.merchants import checkout
from billfold.merchants.payments import PaymentRequest, SelfPayment, pay
from billfold.merchants.profiles import MerchantSuspended
from billfold.merchants.service import Merchants
from billfold.merchants.views import show_payment
from billfold.platform.errors import NotFound, TooManyRequests, ValidationFailed
from billfold.risk.held import PENDING
from billfold.wallet.money import InvalidAmount
from billfold.wallet.p2p import IdempotencyKeyInUse

router = APIRouter(prefix="/api/v1", tags=["payments"], route_class=InputRoute)

QrPayload = Annotated[
    str | None,
    Field(
        max_length=512,
        description="The text of a merchant's EMVCo QR code (merchant-presented mode), as "
        "scanned: static (give `amount`) or a checkout session's (its amount in it).",
    ),
]
SessionIdIn = Annotated[str | None, Field(max_length=ID_MAX, json_schema_extra=UUID)]
# Exactly one of the code and the session.
ONE_TARGET: JsonDict = {
    "oneOf": [
        {"required": [name], "properties": {name: {"type": "string"}}}
        for name in ("qr_payload", "session_id")
    ]
}


class PaymentIn(Body):
    model_config = ConfigDict(json_schema_extra=ONE_TARGET)

    qr_payload: QrPayload = None
    session_id: SessionIdIn = None
    amount: Annotated[Amount, Field(default=None, description="With a static code only.")]
    note: Note = None
    idempotency_key: IdempotencyKeyIn = None


class PaymentOut(BaseModel):
    payment_id: str
    status: str = Field(
        description="COMPLETED, PENDING_VERIFICATION (confirm with "
        "`POST /transfers/{transfer_id}/verify`), PENDING_REVIEW or DECLINED"
    )
    merchant_id: str
    merchant_name: str
    amount: str = Field(description="The price the payer paid.")
    currency: str
    session_id: str | None
    transfer_id: str = Field(description="The movement in the payer's history.")
    note: str | None
    created_at: str
    fee: str | None = Field(default=None, description="The merchant's fee: to the merchant only.")
    net_amount: str | None = Field(
        default=None, description="What the merchant was paid (amount less fee): to it only."
    )


def merchants_of(request: Request) -> Merchants:
    merchants: Merchants = request.app.state.merchants
    return merchants


@router.post(
    "/payments",
    status_code=201,
    response_model=PaymentOut,
    response_model_exclude_unset=True,
    responses={
        202: {
            "model": PaymentOut,
            "description": "Held by the risk checks: PENDING_VERIFICATION or PENDING_REVIEW.",
        },
        **problem_responses(
            ValidationFailed,
            InvalidAmount,
            SelfPayment,
            NotFound,
            MerchantSuspended,
            checkout.SessionNotOpen,
            IdempotencyKeyInUse,
            *MONEY_REFUSALS,
            # Its rate limits are read as the dependency limit_money reads them (api.direct).
            TooManyRequests,
        ),
    },
    openapi_extra=direct.openapi(PaymentIn, IDEMPOTENCY_HEADER, DEVICE_HEADER, COUNTRY_HEADER),
)
async def make_payment(request: Request) -> Response:
    """Pay a merchant: its static QR code and an amount, a checkout session's QR code, or the
    session's id. 201 COMPLETED; 202 when the risk checks hold it (PENDING_VERIFICATION:
    confirm with your PIN at `POST /transfers/{transfer_id}/verify`; PENDING_REVIEW). A
    session is paid once: another payment of it is a 409. Retries with the same
    Idempotency-Key and body get the first answer (with `Idempotent-Replayed: true`)."""
    # A hot path (many payers paying one merchant), read directly as POST /transfers is
    # (api.direct): the same checks, in the order the dependencies made them.
    user_id = direct.bearer_user_id(request)
    await limit_money(request, user_id)
    user = await current_user(request, user_id)
    origin = origin_of(
        request,
        user_id,
        direct.header(request, *DEVICE_HEADER[:2]),
        direct.header(request, *COUNTRY_HEADER[:2]),
    )
    key_header = direct.header(request, *IDEMPOTENCY_HEADER[:2])
    body = await direct.json_body(request, PaymentIn)
    paying = PaymentRequest(
        qr_payload=body.qr_payload,
        session_id=body.session_id,
        amount=body.amount,
        note=body.note,
        idempotency_key=key_header or body.idempotency_key,
    )
    view, replayed = await pay(merchants_of(request), risk_gate(request), user, paying, origin)
    status = 202 if view["status"] in PENDING.values() else 201
    return direct.json_response(view, status, {"Idempotent-Replayed": "true"} if replayed else None)


@router.get(
    "/payments/{payment_id}",
    response_model=PaymentOut,
    response_model_exclude_unset=True,
    responses=problem_responses(NotFound),
)
async def get_payment(request: Request, payment_id: UuidPath, caller: PersonOrMerchant) -> Any:
    """A payment, to its payer (a person's token) or to its merchant (its API key, or its
    owner's token: with the fee)."""
    return await show_payment(request.app.state.pool, caller, payment_id)
