"""Money in and out: bank accounts, cards, add-funds, cash-out, the bank partner's webhooks."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, NamedTuple

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

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
from billfold.api.signals import ClientSignals, Signals
from billfold.funding import bank_accounts, cards, collections, movements, webhooks
from billfold.funding.risk_holds import REVIEW, VERIFICATION
from billfold.funding.service import (
    CURRENCY,
    BankAccountNotVerified,
    CardDeclined,
    Funding,
    FundingTransfer,
    LimitExceeded,
    RiskHold,
)
from billfold.ledger.errors import (
    BalanceLimitExceeded,
    DebtOutstanding,
    IdempotencyKeyReused,
    InsufficientFunds,
    LedgerBusy,
)
from billfold.platform.errors import NotFound, ValidationFailed
from billfold.risk.assessments import never_moved
from billfold.wallet.money import InvalidAmount, format_amount, parse_amount
from billfold.wallet.refusals import WalletFrozen
from billfold.wallet.risk import DeclinedByRisk, Movement, RiskUnavailable, assess_within_budget
from billfold.wallet.transfers import parse_user_id
from billfold.wallet.users import User

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


class MovementOut(BaseModel):
    transfer_id: str
    type: str
    rail: str
    status: str
    amount: str
    currency: str
    fee: str
    total: str = Field(
        description="amount plus fee: what the card or bank account pays for an add-funds, "
        "what leaves the wallet for a cash-out"
    )
    available_now: str
    estimated_completion: str | None
    return_code: str | None
    created_at: str


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


class DeliveryOut(BaseModel):
    status: str = Field(description="applied, ignored, refused or duplicate")
    detail: str


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
    amount, key = _check_movement(body, user, idempotency_key)
    funding = funding_of(request)
    if (body.bank_account_id is None) == (body.card_id is None):
        raise ValidationFailed(
            "give exactly one of bank_account_id and card_id", field="bank_account_id"
        )
    rail = "card" if body.card_id is not None else "ach"
    await movements.check_source(funding, user, body.bank_account_id, body.card_id)
    scored = await _score(request, user, "add_funds", amount, key, origin, rail)
    if body.card_id is not None:
        making = movements.add_funds_card(
            funding, request.app.state.cards, user, amount, body.card_id, key, scored.held
        )
    else:
        assert body.bank_account_id is not None
        making = movements.add_funds_ach(
            funding, user, amount, body.bank_account_id, key, scored.held
        )
    ft, replayed = await _made(funding, user, key, scored, making)
    if ft.rail == "card" and ft.status in ("settled", "returned"):  # charged: not held
        response.status_code = 201
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return movements.funding_view(ft)


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
    amount, key = _check_movement(body, user, idempotency_key)
    if body.bank_account_id is None:
        raise ValidationFailed("bank_account_id is required", field="bank_account_id")
    funding = funding_of(request)
    # What is owed is repaid first, from what the wallet holds; while anything is still owed,
    # nothing goes out (and this request changes nothing).
    owed = await collections.collect(
        funding.pool, funding.ledger, user.id, user.account_id, CURRENCY
    )
    if owed:
        raise debt_outstanding(owed)
    await movements.check_source(funding, user, body.bank_account_id, None)
    scored = await _score(request, user, "cash_out", amount, key, origin, "ach")
    making = movements.cash_out(funding, user, amount, body.bank_account_id, key, scored.held)
    ft, replayed = await _made(funding, user, key, scored, making)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return movements.funding_view(ft)


@router.get(
    "/funding/{funding_id}", response_model=MovementOut, responses=problem_responses(NotFound)
)
async def get_movement(request: Request, funding_id: UuidPath, user: CurrentUser) -> Any:
    """An add-funds or cash-out of the caller's (its `transfer_id`; `GET /transfers/{id}`
    answers the same)."""
    ft = await movements.access_movement(request.app.state.pool, user, funding_id)
    return movements.funding_view(ft)


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


class Scored(NamedTuple):
    held: RiskHold | None = None  # the hold a step-up or review verdict makes it wait under
    assessment_id: int | None = None  # the assessment stored for this request, if any


async def _score(
    request: Request,
    user: User,
    kind: str,
    amount: int,
    key: str,
    origin: ClientSignals,
    rail: str,
) -> Scored:
    """Score an add-funds or cash-out before money moves (a retry of one already made is not
    scored again: the movement it made answers). A decline refuses it; a step-up or review
    verdict gives the hold it is made under."""
    state = request.app.state
    if await movements.exists(state.pool, user.id, key):
        return Scored()
    movement = Movement(
        kind,
        str(user.id),
        None,
        amount,
        CURRENCY,
        ref=f"{kind}:{key}",
        device_id=origin.device_id,
        country=origin.country,
        ip=origin.ip,
        rail=rail,
    )
    verdict = await assess_within_budget(
        state.risk,
        movement,
        state.settings.risk_budget_ms,
        slots=state.risk_slots,
        fail_closed_minor=state.fail_closed_minor,
    )
    waits_for = {"step_up": VERIFICATION, "review": REVIEW}.get(verdict.action)
    if waits_for is None:
        return Scored(assessment_id=verdict.assessment_id)
    if verdict.assessment_id is None:
        # The engine writes funding assessments at once: a held movement refers to its own.
        raise LookupError(f"the {verdict.action} assessment of {kind} {key[:64]} was not stored")
    return Scored(RiskHold(waits_for, verdict.assessment_id), verdict.assessment_id)


async def _made(
    funding: Funding,
    user: User,
    key: str,
    scored: Scored,
    making: Awaitable[tuple[FundingTransfer, bool]],
) -> tuple[FundingTransfer, bool]:
    """The movement `making` makes, and whether it is an earlier request's. If no movement
    is made under this request's assessment (refused: funds, limits, the card declined; or
    a concurrent request with the key made it first), the assessment is stored as declined
    later: money that never moved is no history for the next movements' rules (money in,
    then straight out; the day's cash for a CTR) and features."""
    try:
        ft, replayed = await making
    except Exception:
        if scored.assessment_id is not None and not await movements.exists(
            funding.pool, user.id, key
        ):
            await never_moved(funding.pool, scored.assessment_id)
        raise
    if replayed and scored.assessment_id is not None:
        await never_moved(funding.pool, scored.assessment_id)
    return ft, replayed


def _check_movement(body: MovementIn, user: User, header_key: str | None) -> tuple[int, str]:
    key = header_key or body.idempotency_key
    if not key:
        raise ValidationFailed(
            "an Idempotency-Key header (or idempotency_key field) is required",
            field="idempotency_key",
        )
    if parse_user_id(body.user_id) != user.id:
        raise NotFound(f"wallet '{body.user_id[:64]}' does not exist", user_id=body.user_id[:64])
    return parse_amount(body.amount, CURRENCY), key


def debt_outstanding(owed: int) -> DebtOutstanding:
    if not owed:
        return DebtOutstanding(
            "what you owed is now repaid from money that came in; send again with a new "
            "Idempotency-Key",
            amount_owed=format_amount(0, CURRENCY),
        )
    return DebtOutstanding(
        f"you owe {format_amount(owed, CURRENCY)} from a returned deposit; outgoing money is "
        "blocked until it is repaid",
        amount_owed=format_amount(owed, CURRENCY),
    )
