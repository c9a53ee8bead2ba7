"""Wallets and person-to-person transfers."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from billfold.api import direct
from billfold.api.fields import (
    IDEMPOTENCY_KEY,
    Amount,
    IdempotencyKeyIn,
    Note,
    Pin,
    Recipient,
    TransferIdPath,
    UserIdIn,
)
from billfold.api.funding import MovementOut, debt_outstanding
from billfold.api.identity import CurrentUser
from billfold.api.inputs import Body, InputRoute
from billfold.api.limits import limit_money
from billfold.api.problems import problem_responses
from billfold.api.signals import COUNTRY_HEADER, DEVICE_HEADER, ClientSignals, signals_of
from billfold.funding import collections, movements, risk_holds
from billfold.funding.cards import CardProcessorUnavailable
from billfold.funding.service import CardDeclined
from billfold.ledger.errors import (
    BalanceLimitExceeded,
    DebtOutstanding,
    HoldExpired,
    HoldNotPending,
    IdempotencyKeyReused,
    InsufficientFunds,
    LedgerBusy,
    LedgerError,
    TransferNotFound,
)
from billfold.ledger.model import Kind, Transfer
from billfold.platform.errors import BillfoldError, NotFound, TooManyRequests, ValidationFailed
from billfold.platform.security import Unauthenticated
from billfold.risk import held as held_transfers
from billfold.risk.assessments import never_moved
from billfold.risk.places import remember
from billfold.wallet.money import InvalidAmount
from billfold.wallet.pins import PinNotSet, check_pin
from billfold.wallet.refusals import WalletFrozen
from billfold.wallet.risk import (
    DeclinedByRisk,
    KeyInFlight,
    Movement,
    RiskUnavailable,
    Verdict,
    assess_within_budget,
    release_key,
)
from billfold.wallet.transfers import (
    P2PRequest,
    RecipientNotFound,
    SelfTransfer,
    access_transfer,
    check_p2p,
    do_p2p,
    ledger_client,
    parse_user_id,
    transfer_view,
    wallet_view,
)
from billfold.wallet.users import User, get_user

router = APIRouter(prefix="/api/v1", tags=["wallet"], route_class=InputRoute)


class IdempotencyKeyInUse(BillfoldError):
    code = "idempotency_key_in_use"
    status = 409
    title = "A request with this idempotency key is still running"


class WrongPin(BillfoldError):
    code = "wrong_pin"
    status = 403
    title = "Wrong PIN"


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


IDEMPOTENCY_KEY_MAX = 255
IDEMPOTENCY_HEADER = (
    "idempotency-key",
    IDEMPOTENCY_KEY_MAX,
    IDEMPOTENCY_KEY,
)


# What moving money out of a wallet may be refused for, once the request is read.
MONEY_REFUSALS = (
    InsufficientFunds,
    BalanceLimitExceeded,
    WalletFrozen,
    DebtOutstanding,
    IdempotencyKeyReused,
    DeclinedByRisk,
    RiskUnavailable,
    LedgerBusy,
)


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
        IdempotencyKeyInUse,
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
    origin = signals_of(
        request,
        user_id,
        direct.header(request, *DEVICE_HEADER[:2]),
        direct.header(request, *COUNTRY_HEADER[:2]),
    )
    key_header = direct.header(request, *IDEMPOTENCY_HEADER[:2])
    try:
        body = await direct.json_body(request, TransferBody)
        # Scoring's admission: the transfer waits for a slot before its scoring budget starts.
        async with request.app.state.risk_slots or contextlib.nullcontext():
            view, replayed = await _send(request.app.state, body, user_id, origin, key_header)
    except (RequestValidationError, ValidationFailed, InvalidAmount, NotFound, RecipientNotFound):
        # Refused before the sender's row was read (it is read with the recipient's): for a
        # token whose user no longer exists, the answer is the 401 every endpoint that loads
        # its caller first gives, not a 404 or 422 about the body.
        await _token_user_exists(request.app.state.pool, user_id)
        raise
    return direct.json_response(view, 201, {"Idempotent-Replayed": "true"} if replayed else None)


async def _token_user_exists(pool: Any, user_id: uuid.UUID) -> None:
    try:
        await get_user(pool, user_id)
    except NotFound:
        raise Unauthenticated("the access token names no user") from None


async def _send(
    state: Any,
    body: TransferBody,
    user_id: uuid.UUID,
    origin: ClientSignals,
    key_header: str | None,
) -> tuple[dict[str, Any], bool]:
    """The transfer's public form, and whether it is the answer to an earlier request."""
    key = key_header or body.idempotency_key
    if not key:
        raise ValidationFailed(
            "an Idempotency-Key header (or idempotency_key field) is required",
            field="idempotency_key",
        )
    if parse_user_id(body.sender_id) != user_id:
        raise NotFound(f"wallet '{body.sender_id[:64]}' does not exist", user_id=body.sender_id)
    p2p = await check_p2p(state.pool, state.users, user_id, body.recipient, body.amount, body.note)
    user = p2p.sender
    client = ledger_client(user)
    movement = Movement(
        "p2p",
        str(user.id),
        str(p2p.recipient.id),
        p2p.amount_minor,
        "USD",
        ref=key,
        device_id=origin.device_id,
        country=origin.country,
        ip=origin.ip,
    )
    claim = f"in-flight:{client}:{key}"
    verdict = await _scored(state, movement, claim, client)
    if verdict is None:
        return await _answer_retry(state, client, key, p2p)
    try:
        try:
            if verdict.action in held_transfers.PENDING:
                return await _hold_for_risk(state, p2p, key, verdict, movement)
            # The assessment is written with the transfer (RulesEngine's with_transfers).
            rows = (verdict.with_transfer,) if verdict.with_transfer else ()
            transfer = await do_p2p(state.ledger, p2p, key, rows=rows)
        except IdempotencyKeyReused:
            # A late retry (its claim gone) scored differently from the first try: the first
            # one's transfer or hold stands, if it is this same request.
            first = await _same_request(state, client, key, p2p)
            return await _view_of_first(state, first, user.account_id), True
    except DebtOutstanding as refused:
        # Repaid first from what came in since; the refusal stands for this key either way.
        owed = await collections.collect(state.pool, state.ledger, user.id, user.account_id, "USD")
        raise debt_outstanding(owed).replaying(refused) from None
    except BaseException:
        # The outcome may not be stored (the ledger was busy, the request was cancelled): a
        # retry must be able to run at once. A stored failure is replayed.
        await release_key(state.redis, claim)
        raise
    return transfer_view(transfer, user.account_id), transfer.replayed


async def _scored(state: Any, movement: Movement, claim: str, client: str) -> Verdict | None:
    """The verdict on the transfer, scored before money moves (`decline` raises here), or None
    when it is a retry that the first request's answer answers.

    The request claims its key in flight in the same Redis round trip that scores it: a second
    request with the key, while the first runs or just after, is not scored again. A claim that
    succeeded stays (a retry then finds the stored outcome); one that failed is removed, so that
    a retry can run at once."""
    try:
        return await assess_within_budget(
            state.risk,
            movement,
            state.settings.risk_budget_ms,
            claim,
            fail_closed_minor=state.fail_closed_minor,
        )
    except KeyInFlight:
        return None
    except DeclinedByRisk:
        # A late retry (its claim gone) of a request that was stored, scored again and declined
        # this time: the first answer stands, as it does for any retry. Only a decline pays
        # for this lookup.
        if await state.ledger.has_outcome(client, movement.ref):
            return None
        await release_key(state.redis, claim)
        raise
    except BaseException:
        # Declined, or scoring failed: nothing is stored, so a retry must be able to run at once.
        await release_key(state.redis, claim)
        raise


async def _answer_retry(
    state: Any, client: str, key: str, p2p: P2PRequest
) -> tuple[dict[str, Any], bool]:
    """What the first request with this key did, without scoring it again: its transfer or
    hold, or its stored failure (the ledger replays both); 409 while it is still running."""
    stored = await state.ledger.stored_transfer(client, key)
    if stored is None and not await state.ledger.has_outcome(client, key):
        raise IdempotencyKeyInUse(
            "a request with this idempotency key is still running; retry shortly",
            idempotency_key=key,
        )
    sender = p2p.sender.account_id
    if stored is not None and stored.kind is Kind.HOLD:
        first = await _same_request(state, client, key, p2p)
        return await _view_of_first(state, first, sender), True
    # The ledger answers with what it stored, or refuses a key reused for another request.
    return transfer_view(await do_p2p(state.ledger, p2p, key), sender), True


async def _view_of_first(state: Any, first: Transfer, viewer: int) -> dict[str, Any]:
    if first.kind is Kind.HOLD:
        return transfer_view(first, viewer, await held_transfers.status_of(state.pool, first.id))
    return transfer_view(first, viewer)


async def _same_request(state: Any, client: str, key: str, p2p: Any) -> Transfer:
    """The transfer or hold this key made, if it moved the same amount to the same recipient;
    otherwise the key was reused for another request, and that is the error."""
    first: Transfer | None = await state.ledger.stored_transfer(client, key)
    same = (
        first is not None
        and first.amount_minor == p2p.amount_minor
        and (first.metadata or {}).get("recipient_id") == str(p2p.recipient.id)
    )
    if not same:
        raise IdempotencyKeyReused(
            f"idempotency key '{key[:64]}' was used for another request", idempotency_key=key
        )
    assert first is not None
    return first


async def _hold_for_risk(
    state: Any, p2p: Any, key: str, verdict: Verdict, movement: Movement
) -> tuple[dict[str, Any], bool]:
    """Reserve the money for a transfer the risk engine wants confirmed or reviewed.

    The verdict's assessment is stored already (the hold refers to it). If no hold is made
    under it, it held nothing and is marked declined later, so that the next movements'
    features do not count money that never moved: when the ledger refuses the hold, or when
    a late retry (its claim gone, scored and held again) finds the first request's hold,
    which then answers as it stands now (waiting, verified, reviewed)."""
    assessment = verdict.assessment_id
    assert assessment is not None
    try:
        hold = await do_p2p(state.ledger, p2p, key, hold=True)
    except Exception as error:
        # Refused, or not stored (the ledger busy): a retry is scored afresh.
        refused = isinstance(error, LedgerError)
        if refused or await state.ledger.stored_transfer(ledger_client(p2p.sender), key) is None:
            await never_moved(state.pool, assessment)
        raise
    noted = await held_transfers.record_hold(
        state.pool,
        hold,
        sender_id=p2p.sender.id,
        recipient_id=p2p.recipient.id,
        action=verdict.action,
        assessment_id=assessment,
        device_id=movement.device_id,
        country=movement.country,
    )
    if not noted:
        await never_moved(state.pool, assessment)
        return await _view_of_first(state, hold, p2p.sender.account_id), True
    return (
        transfer_view(hold, p2p.sender.account_id, held_transfers.PENDING[verdict.action]),
        hold.replayed,
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
        return await _verify_movement(state, transfer_id, body.pin, user)
    async with state.pool.acquire() as conn, conn.transaction():
        held = await held_transfers.lock_held(
            conn, transfer_id, status="PENDING_VERIFICATION", sender_id=user.id
        )
        pin = await check_pin(state.pool, user.id, body.pin)
        status = await held_transfers.do_confirm(
            conn, state.ledger, held, pin, client=ledger_client(user)
        )
    if not pin.right:
        raise WrongPin(
            f"wrong PIN; the transfer is {status}",
            attempts_left=max(held_transfers.MAX_PIN_FAILURES - held.pin_failures - 1, 0),
            transfer_status=status,
        )
    if status == "COMPLETED":
        await remember(state.pool, _movement_of(held))
    transfer = await state.ledger.get_transfer(held.hold_id)
    return transfer_view(transfer, user.account_id, status)


async def _verify_movement(state: Any, funding_id: str, pin: str, user: User) -> dict[str, Any]:
    """The right PIN releases a held add-funds or cash-out to its rail (an add-funds is booked,
    its card charged), or sends it to review if it was changed within 24 hours; the third
    wrong one declines it (a cash-out's money back)."""
    funding = state.funding
    async with state.pool.acquire() as conn, conn.transaction():
        ft = await risk_holds.access_held_movement(
            conn, funding_id, waiting_for=risk_holds.VERIFICATION, user_id=user.id
        )
        checked = await check_pin(state.pool, user.id, pin)
        if checked.right and checked.changed_recently:
            ft = await risk_holds.do_send_to_review(conn, ft)
            assert ft.assessment_id is not None  # a held movement is held on its assessment
            await held_transfers.note_reason(
                conn, ft.assessment_id, held_transfers.PIN_CHANGED_REASON
            )
        elif checked.right:
            ft = await risk_holds.do_release_movement(conn, funding, ft)
        else:
            ft = await risk_holds.do_note_wrong_pin(conn, ft)
            if ft.pin_failures >= risk_holds.MAX_PIN_FAILURES:
                ft = await risk_holds.do_decline_movement(conn, funding, ft)
    if not checked.right:
        status = movements.funding_view(ft)["status"]
        raise WrongPin(
            f"wrong PIN; the transfer is {status}",
            attempts_left=max(risk_holds.MAX_PIN_FAILURES - ft.pin_failures, 0),
            transfer_status=status,
        )
    if ft.risk_status is not None:  # sent to review
        return movements.funding_view(ft)
    if ft.assessment_id is not None:
        await held_transfers.remember_assessed(state.pool, ft.assessment_id)
    ft = await risk_holds.finish_release(funding, state.cards, ft)
    return movements.funding_view(ft)


def _movement_of(held: Any) -> Movement:
    return Movement(
        "p2p",
        str(held.sender_id),
        str(held.recipient_id),
        held.amount_minor,
        "USD",
        device_id=held.device_id,
        country=held.country,
    )


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
        return movements.funding_view(
            await movements.access_movement(state.pool, user, transfer_id)
        )
    transfer = await access_transfer(state.ledger, user, transfer_id)
    if transfer.kind is Kind.HOLD:
        status = await held_transfers.status_of(state.pool, transfer.id)
        return transfer_view(transfer, user.account_id, status)
    return transfer_view(transfer, user.account_id)
