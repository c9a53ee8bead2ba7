"""Money in and out: bank accounts, cards, add-funds, cash-out, the bank partner's webhooks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, Field

from billfold.api.identity import CurrentUser
from billfold.api.inputs import Body, InputRoute
from billfold.api.limits import limit_money
from billfold.api.signals import Signals, risk_gate
from billfold.api.views import MovementOut
from billfold.funding import actions, bank_accounts, cards, movements, webhooks
from billfold.funding.service import CURRENCY, Funding
from billfold.funding.views import funding_view
from billfold.wallet.money import amount_schema

router = APIRouter(prefix="/api/v1", tags=["funding"], route_class=InputRoute)
MAX_KEY_LENGTH = 255


class BankAccountIn(Body):
    routing_number: str = Field(max_length=32)
    account_number: str = Field(max_length=32)
    account_holder_name: str = Field(max_length=200)
    account_type: str = Field(max_length=20)


class BankAccountOut(BaseModel):
    bank_account_id: str
    last4: str
    account_type: str
    status: str
    routing_number: str
    account_holder_name: str
    created_at: str


class VerifyIn(Body):
    amounts: list[Any] = Field(
        description="The two micro-deposit amounts, e.g. ['0.32', '0.45'].",
        json_schema_extra={"items": amount_schema(CURRENCY)},
    )


class MovementIn(Body):
    user_id: str = Field(max_length=64)
    amount: Any = Field(
        description="In dollars: a decimal string ('50.00') or a JSON number written the same"
        " way (no exponent).",
        json_schema_extra=amount_schema(CURRENCY),
    )
    bank_account_id: str | None = Field(default=None, max_length=64)
    card_id: str | None = Field(default=None, max_length=64)
    idempotency_key: str | None = Field(default=None, max_length=MAX_KEY_LENGTH)


# A bank partner's event, as the webhook's OpenAPI body: checked by webhooks.check_event.
EVENT = {
    "type": "object",
    "required": ["type", "data"],
    "properties": {
        "type": {"type": "string", "enum": list(webhooks.EVENT_TYPES)},
        "data": {"type": "object", "properties": {"transfer_id": {"type": "string"}}},
    },
}


class CardIn(Body):
    token: str = Field(max_length=100)


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


@router.post("/bank-accounts", status_code=201, response_model=BankAccountOut)
async def link_bank_account(request: Request, body: BankAccountIn, user: CurrentUser) -> Any:
    """Link a bank account. Two micro-deposits are sent; confirm them to verify it."""
    link = bank_accounts.check_link_bank_account(
        body.routing_number, body.account_number, body.account_holder_name, body.account_type
    )
    return await bank_accounts.do_link_bank_account(funding_of(request), user.id, link)


@router.get("/bank-accounts", response_model=list[BankAccountOut])
async def get_bank_accounts(request: Request, user: CurrentUser) -> Any:
    return await bank_accounts.list_bank_accounts(request.app.state.pool, user.id)


@router.post("/bank-accounts/{bank_account_id}/verify", response_model=BankAccountOut)
async def verify_bank_account(
    request: Request, bank_account_id: str, body: VerifyIn, user: CurrentUser
) -> Any:
    """Confirm the two micro-deposit amounts. Three wrong tries lock the account."""
    return await bank_accounts.do_verify_bank_account(
        funding_of(request), user.id, bank_account_id, body.amounts
    )


@router.delete("/bank-accounts/{bank_account_id}", status_code=204)
async def unlink_bank_account(request: Request, bank_account_id: str, user: CurrentUser) -> None:
    await bank_accounts.do_unlink_bank_account(request.app.state.pool, user.id, bank_account_id)


@router.post("/cards", status_code=201, response_model=CardOut)
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


@router.delete("/cards/{card_id}", status_code=204)
async def remove_card(request: Request, card_id: str, user: CurrentUser) -> None:
    await cards.remove_card(request.app.state.pool, user.id, card_id)


@router.post(
    "/wallet/add-funds",
    status_code=202,
    response_model=MovementOut,
    dependencies=[Depends(limit_money)],
)
async def add_funds(
    request: Request,
    response: Response,
    body: MovementIn,
    user: CurrentUser,
    origin: Signals,
    idempotency_key: Annotated[str | None, Header(max_length=MAX_KEY_LENGTH)] = None,
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
)
async def cash_out(
    request: Request,
    response: Response,
    body: MovementIn,
    user: CurrentUser,
    origin: Signals,
    idempotency_key: Annotated[str | None, Header(max_length=MAX_KEY_LENGTH)] = None,
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


@router.get("/funding/{funding_id}", response_model=MovementOut)
async def get_movement(request: Request, funding_id: str, user: CurrentUser) -> Any:
    """An add-funds or cash-out of the caller's (its `transfer_id`; `GET /transfers/{id}`
    answers the same)."""
    ft = await movements.access_movement(request.app.state.pool, user, funding_id)
    return funding_view(ft)


@router.post(
    "/webhooks/bank",
    # The body is read as it was signed; the input gate (api.inputs) reads it as JSON first.
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": EVENT}}}
    },
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
