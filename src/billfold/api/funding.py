"""Money in and out: bank accounts, cards, add-funds, cash-out, the bank partner's webhooks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict

from billfold.api.fields import (
    ONE_SOURCE,
    TO_A_BANK,
    AccountNumber,
    AccountType,
    Amount,
    Amounts,
    CardToken,
    HolderName,
    IdempotencyKeyHeader,
    IdempotencyKeyIn,
    RoutingNumber,
    SourceIdIn,
    UserIdIn,
    UuidPath,
)
from billfold.api.identity import CurrentUser
from billfold.api.inputs import Body, InputRoute
from billfold.api.limits import limit_money
from billfold.api.problems import problem_responses
from billfold.api.signals import Signals, risk_gate
from billfold.api.views import DeliveryOut, MovementOut
from billfold.funding import actions, bank_accounts, cards, movements, webhooks
from billfold.funding.service import (
    BankAccountNotVerified,
    CardDeclined,
    Funding,
    LimitExceeded,
)
from billfold.funding.views import funding_view
from billfold.ledger.errors import (
    BalanceLimitExceeded,
    DebtOutstanding,
    IdempotencyKeyReused,
    InsufficientFunds,
    LedgerBusy,
)
from billfold.platform.errors import NotFound, ValidationFailed, WalletFrozen
from billfold.risk.gate import DeclinedByRisk, RiskUnavailable
from billfold.wallet.money import InvalidAmount

router = APIRouter(prefix="/api/v1", tags=["funding"], route_class=InputRoute)


class BankAccountIn(Body):
    routing_number: RoutingNumber
    account_number: AccountNumber
    account_holder_name: HolderName
    account_type: AccountType


class BankAccountOut(BaseModel):
    bank_account_id: str
    last4: str
    account_type: str
    status: str
    routing_number: str
    account_holder_name: str
    created_at: str


class VerifyIn(Body):
    amounts: Amounts


class MovementIn(Body):
    """An add-funds: from a bank account or from a card."""

    model_config = ConfigDict(json_schema_extra=ONE_SOURCE)

    user_id: UserIdIn
    amount: Amount
    bank_account_id: SourceIdIn = None
    card_id: SourceIdIn = None
    idempotency_key: IdempotencyKeyIn = None


class CashOutIn(MovementIn):
    """A cash-out: to a bank account."""

    model_config = ConfigDict(json_schema_extra=TO_A_BANK)


# A bank partner's event, as the webhook's OpenAPI body: checked by webhooks.check_event.
EVENT = {
    "type": "object",
    "required": ["type", "data"],
    "properties": {
        "type": {"type": "string", "enum": list(webhooks.EVENT_TYPES)},
        "data": {
            "type": "object",
            "required": ["transfer_id"],
            "properties": {
                "transfer_id": {"type": "string"},
                "return_code": {
                    "type": "string",
                    "pattern": "^R[0-9]{2}$",
                    "description": "For ach.returned: the NACHA return code.",
                },
            },
        },
    },
}
# The Standard Webhooks headers a delivery is signed with (webhooks.verify).
WEBHOOK_HEADERS = [
    {
        "name": "webhook-id",
        "in": "header",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    },
    {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "description": "Seconds since 1970, within 5 minutes of now.",
        "schema": {"type": "string", "pattern": f"^[0-9]{{1,{webhooks.MAX_TIMESTAMP_DIGITS}}}$"},
    },
    {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "description": "`v1,` and the base64 HMAC-SHA256 of id, timestamp and body.",
        "schema": {"type": "string", "minLength": 1},
    },
]


class CardIn(Body):
    token: CardToken


class CardOut(BaseModel):
    card_id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    status: str


def funding_of(request: Request) -> Funding:
    funding: Funding = request.app.state.funding
    return funding


@router.post(
    "/bank-accounts",
    status_code=201,
    response_model=BankAccountOut,
    responses=problem_responses(ValidationFailed, bank_accounts.BankAccountExists),
)
async def link_bank_account(request: Request, body: BankAccountIn, user: CurrentUser) -> Any:
    """Link a bank account. Two micro-deposits are sent; confirm them to verify it."""
    link = bank_accounts.check_link_bank_account(
        body.routing_number, body.account_number, body.account_holder_name, body.account_type
    )
    return await bank_accounts.do_link_bank_account(funding_of(request), user.id, link)


@router.get("/bank-accounts", response_model=list[BankAccountOut])
async def get_bank_accounts(request: Request, user: CurrentUser) -> Any:
    return await bank_accounts.list_bank_accounts(request.app.state.pool, user.id)


@router.post(
    "/bank-accounts/{bank_account_id}/verify",
    response_model=BankAccountOut,
    responses=problem_responses(
        NotFound,
        ValidationFailed,
        InvalidAmount,
        bank_accounts.VerificationFailed,
        bank_accounts.BankAccountLocked,
    ),
)
async def verify_bank_account(
    request: Request, bank_account_id: UuidPath, body: VerifyIn, user: CurrentUser
) -> Any:
    """Confirm the two micro-deposit amounts. Three wrong tries lock the account."""
    return await bank_accounts.do_verify_bank_account(
        funding_of(request), user.id, bank_account_id, body.amounts
    )


@router.delete(
    "/bank-accounts/{bank_account_id}", status_code=204, responses=problem_responses(NotFound)
)
async def unlink_bank_account(
    request: Request, bank_account_id: UuidPath, user: CurrentUser
) -> None:
    await bank_accounts.do_unlink_bank_account(request.app.state.pool, user.id, bank_account_id)


@router.post(
    "/cards",
    status_code=201,
    response_model=CardOut,
    responses=problem_responses(ValidationFailed, cards.CardProcessorUnavailable),
)
async def add_card(request: Request, body: CardIn, user: CurrentUser) -> Any:
    """Store a card tokenised by the processor (the number never reaches Billfold)."""
    return await cards.add_card(
        request.app.state.pool,
        request.app.state.funding.keys,
        request.app.state.cards,
        user.id,
        body.token,
    )


@router.get("/cards", response_model=list[CardOut])
async def get_cards(request: Request, user: CurrentUser) -> Any:
    return await cards.list_cards(request.app.state.pool, user.id)


@router.delete("/cards/{card_id}", status_code=204, responses=problem_responses(NotFound))
async def remove_card(request: Request, card_id: UuidPath, user: CurrentUser) -> None:
    await cards.remove_card(request.app.state.pool, user.id, card_id)


# What an add-funds or cash-out may be refused for, once the request is read.
MOVEMENT_REFUSALS = (
    ValidationFailed,
    InvalidAmount,
    NotFound,
    BankAccountNotVerified,
    LimitExceeded,
    IdempotencyKeyReused,
    WalletFrozen,
    DeclinedByRisk,
    RiskUnavailable,
    LedgerBusy,
)


@router.post(
    "/wallet/add-funds",
    status_code=202,
    response_model=MovementOut,
    dependencies=[Depends(limit_money)],
    responses={
        201: {"model": MovementOut, "description": "From a card: charged and completed at once."},
        **problem_responses(
            *MOVEMENT_REFUSALS,
            BalanceLimitExceeded,
            CardDeclined,
            cards.CardProcessorUnavailable,
        ),
    },
)
async def add_funds(
    request: Request,
    response: Response,
    body: MovementIn,
    user: CurrentUser,
    origin: Signals,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Add money from a verified bank account (ACH: 202 PENDING until it settles) or from a
    card (`card_id`: 201 COMPLETED at once, with the card fee). One the risk checks hold is 202
    PENDING_VERIFICATION (confirm with `POST /transfers/{transfer_id}/verify`) or
    PENDING_REVIEW: nothing is booked nor charged until it is released."""
    state = request.app.state
    ft, replayed = await actions.add_funds(
        state.funding,
        state.cards,
        risk_gate(request),
        user,
        _movement_request(body, idempotency_key),
        origin,
    )
    if ft.rail == "card" and ft.status in ("settled", "returned"):  # charged: not held
        response.status_code = 201
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return funding_view(ft)


@router.post(
    "/wallet/cash-out",
    status_code=202,
    response_model=MovementOut,
    dependencies=[Depends(limit_money)],
    responses=problem_responses(*MOVEMENT_REFUSALS, InsufficientFunds, DebtOutstanding),
)
async def cash_out(
    request: Request,
    response: Response,
    body: CashOutIn,
    user: CurrentUser,
    origin: Signals,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Send money to a verified bank account: held at once, PENDING until it settles. One the
    risk checks hold is reserved all the same but not sent before it is released
    (PENDING_VERIFICATION or PENDING_REVIEW)."""
    request_ = _movement_request(body, idempotency_key)
    ft, replayed = await actions.cash_out(
        request.app.state.funding, risk_gate(request), user, request_, origin
    )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return funding_view(ft)


@router.get(
    "/funding/{funding_id}", response_model=MovementOut, responses=problem_responses(NotFound)
)
async def get_movement(request: Request, funding_id: UuidPath, user: CurrentUser) -> Any:
    """An add-funds or cash-out of the caller's (its `transfer_id`; `GET /transfers/{id}`
    answers the same)."""
    ft = await movements.access_movement(request.app.state.pool, user, funding_id)
    return funding_view(ft)


@router.post(
    "/webhooks/bank",
    # The body is read as it was signed; the input gate (api.inputs) reads it as JSON first.
    openapi_extra={
        "parameters": WEBHOOK_HEADERS,
        "requestBody": {"required": True, "content": {"application/json": {"schema": EVENT}}},
    },
    response_model=DeliveryOut,
    responses=problem_responses(
        webhooks.InvalidSignature,
        webhooks.StaleWebhook,
        ValidationFailed,
        webhooks.WebhookInProgress,
    ),
)
async def bank_webhook(request: Request) -> dict[str, str]:
    """The bank partner's events (Standard Webhooks signature; no bearer token)."""
    body = await request.body()
    delivery = await webhooks.receive(funding_of(request), dict(request.headers), body)
    return {"status": delivery.status, "detail": delivery.detail}


def _movement_request(body: MovementIn, header_key: str | None) -> actions.MovementRequest:
    return actions.MovementRequest(
        user_id=body.user_id,
        amount=body.amount,
        bank_account_id=body.bank_account_id,
        card_id=body.card_id,
        idempotency_key=header_key or body.idempotency_key,
    )
