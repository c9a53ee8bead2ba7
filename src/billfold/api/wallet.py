"""Wallets and person-to-person transfers."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from billfold.api import direct
from billfold.api.fields import (
    IDEMPOTENCY_HEADER,
    Amount,
    IdempotencyKeyIn,
    Note,
    Pin,
    Recipient,
    TransferIdPath,
    UserIdIn,
)
from billfold.api.identity import CurrentUser, current_user
from billfold.api.inputs import Body, InputRoute
from billfold.api.limits import limit_money
from billfold.api.problems import MONEY_REFUSALS, problem_responses
from billfold.api.signals import COUNTRY_HEADER, DEVICE_HEADER, origin_of, risk_gate
from billfold.api.views import MovementOut
from billfold.funding import movements, risk_holds
from billfold.funding.cards import CardProcessorUnavailable
from billfold.funding.service import CardDeclined
from billfold.funding.views import funding_view
from billfold.ledger.errors import (
    BalanceLimitExceeded,
    HoldExpired,
    HoldNotPending,
    LedgerBusy,
    TransferNotFound,
)
from billfold.platform.errors import NotFound, TooManyRequests, ValidationFailed
from billfold.risk import held as held_transfers
from billfold.wallet import held, p2p
from billfold.wallet.money import InvalidAmount
from billfold.wallet.pins import PinNotSet, WrongPin
from billfold.wallet.transfers import (
    RecipientNotFound,
    SelfTransfer,
    wallet_view,
)

router = APIRouter(prefix="/api/v1", tags=["wallet"], route_class=InputRoute)


class TransferBody(Body):
    sender_id: UserIdIn
    recipient: Recipient
    amount: Amount
    note: Note = None
    idempotency_key: IdempotencyKeyIn = None


class WalletOut(BaseModel):
    user_id: str
    currency: str
    balance: str
    available_balance: str
    pending_balance: str


class TransferOut(BaseModel):
    transfer_id: str
    type: str
    status: str
    amount: str
    currency: str
    sender_id: str | None
    recipient_id: str | None
    sender_balance: str | None
    note: str | None
    created_at: str


# `{user_id:uuid}`: a user id is a uuid, so that the literal paths beside it
# (/wallet/add-funds, /wallet/cash-out) never match it, and their 405 lists their own methods.
@router.get(
    "/wallet/{user_id:uuid}", response_model=WalletOut, responses=problem_responses(NotFound)
)
async def get_wallet(request: Request, user_id: uuid.UUID, user: CurrentUser) -> dict[str, Any]:
    """Balance (posted), available balance (spendable now) and pending incoming money."""
    if user_id != user.id:
        raise NotFound(f"wallet '{user_id}' does not exist", user_id=str(user_id))
    return await wallet_view(request.app.state.pool, request.app.state.balances, user)


@router.post(
    "/transfers",
    status_code=201,
    response_model=TransferOut,
    responses=problem_responses(
        ValidationFailed,
        InvalidAmount,
        SelfTransfer,
        NotFound,
        RecipientNotFound,
        p2p.IdempotencyKeyInUse,
        # Its rate limits are read as the dependency limit_money reads them (api.direct).
        TooManyRequests,
        *MONEY_REFUSALS,
    ),
    openapi_extra=direct.openapi(TransferBody, IDEMPOTENCY_HEADER, DEVICE_HEADER, COUNTRY_HEADER),
)
async def send_money(request: Request) -> Response:
    """Send money to a username, email or phone number. Retries with the same Idempotency-Key
    and body get the first answer (with `Idempotent-Replayed: true`)."""
    # The hot path reads its request directly (api.direct): the same checks, in this order, as
    # the dependencies of the other money endpoints.
    user_id = direct.bearer_user_id(request)
    await limit_money(request, user_id)
    origin = origin_of(
        request,
        user_id,
        direct.header(request, *DEVICE_HEADER[:2]),
        direct.header(request, *COUNTRY_HEADER[:2]),
    )
    key_header = direct.header(request, *IDEMPOTENCY_HEADER[:2])
    try:
        body = await direct.json_body(request, TransferBody)
        view, replayed = await p2p.send_money(
            _payments(request), user_id, _send_request(body, key_header), origin
        )
    except (RequestValidationError, ValidationFailed, InvalidAmount, NotFound, RecipientNotFound):
        # Refused before the sender's row was read (it is read with the recipient's): for a
        # token whose user no longer exists, the answer is the 401 every endpoint that loads
        # its caller first gives, not a 404 or 422 about the body.
        await current_user(request, user_id)
        raise
    return direct.json_response(view, 201, {"Idempotent-Replayed": "true"} if replayed else None)


def _payments(request: Request) -> p2p.Payments:
    state = request.app.state
    return p2p.Payments(state.pool, state.ledger, state.users, risk_gate(request))


def _send_request(body: TransferBody, key_header: str | None) -> p2p.SendMoney:
    return p2p.SendMoney(
        sender_id=body.sender_id,
        recipient=body.recipient,
        amount=body.amount,
        note=body.note,
        idempotency_key=key_header or body.idempotency_key,
    )


class PinIn(Body):
    pin: Pin


@router.post(
    "/transfers/{transfer_id}/verify",
    response_model=TransferOut | MovementOut,
    dependencies=[Depends(limit_money)],
    responses=problem_responses(
        WrongPin,
        PinNotSet,
        NotFound,
        held_transfers.NotPending,
        HoldNotPending,
        HoldExpired,
        # Released, an add-funds from a card is charged then.
        CardDeclined,
        CardProcessorUnavailable,
        BalanceLimitExceeded,
        LedgerBusy,
    ),
)
async def verify_transfer(
    request: Request, transfer_id: TransferIdPath, body: PinIn, user: CurrentUser
) -> dict[str, Any]:
    """Confirm a transfer held for verification with your PIN. Three wrong PINs decline it. A
    PIN changed within the last 24 hours does not complete it: it goes to review
    (`PENDING_REVIEW`), its money still held. An add-funds or cash-out (its uuid
    `transfer_id`) is confirmed the same way, and answered as `GET /funding/{transfer_id}`
    shows it."""
    state = request.app.state
    if risk_holds.is_movement_id(transfer_id):
        return await risk_holds.verify_movement(
            state.funding, state.cards, user, transfer_id, body.pin
        )
    return await held.verify_transfer(state.pool, state.ledger, user, transfer_id, body.pin)


@router.get(
    "/transfers/{transfer_id}",
    response_model=TransferOut | MovementOut,
    responses=problem_responses(TransferNotFound, NotFound),
)
async def get_transfer(
    request: Request, transfer_id: TransferIdPath, user: CurrentUser
) -> dict[str, Any]:
    """A movement the caller took part in, by the id its first answer and the history give:
    a transfer sent or received, or an add-funds or cash-out (its uuid: answered as
    `GET /funding/{transfer_id}` answers)."""
    state = request.app.state
    if risk_holds.is_movement_id(transfer_id):
        return funding_view(await movements.access_movement(state.pool, user, transfer_id))
    return await held.show_transfer(state.pool, state.ledger, user, transfer_id)
