"""The wallet's money pages: send to a person, pay a business by its QR code, and a movement's
page, where a step-up is answered with the PIN.

Each money form carries an idempotency key made when it was rendered, so that a double submit
or a refresh moves money once (the context answers a retry with what the first request did).
A movement that was made or held is then shown on its own page (/app/transfers/{id}, after a
303): its status says what happened, and one waiting for verification asks for the PIN there.
A refusal re-renders the form with a fresh key (nothing moved under the old one), except a
refusal that may leave the outcome unknown (busy, scoring overran, the first try still
running): the form keeps its key, so that trying again cannot move the money twice."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from billfold.api.fields import HANDLE_MAX, IDEMPOTENCY_KEY_MAX, PIN_MAX
from billfold.api.inputs import InputRoute
from billfold.api.limits import limit_money
from billfold.api.signals import risk_gate
from billfold.funding import risk_holds
from billfold.ledger.errors import LedgerBusy, TransferNotFound
from billfold.merchants import qr
from billfold.merchants.payments import PaymentRequest, pay
from billfold.platform.errors import BillfoldError, ValidationFailed
from billfold.risk import held as risk_held
from billfold.risk.gate import RiskUnavailable
from billfold.wallet import held, p2p
from billfold.wallet.money import MAX_AMOUNT_CHARS
from billfold.wallet.pins import WrongPin
from billfold.wallet.transfers import MAX_NOTE_LENGTH
from billfold.web import pages
from billfold.web.identity import Poster, WebUser, web_origin

router = APIRouter(route_class=InputRoute, include_in_schema=False)

# Refusals after which the outcome of the key may still be unknown: the form keeps its key.
KEEP_KEY = (LedgerBusy, RiskUnavailable, p2p.IdempotencyKeyInUse)
PAYLOAD_MAX = 512
# The movement ids of the path: a transfer's number (or a funding movement's uuid, redirected).
ID_MAX = 40

Handle = Annotated[str, Form(max_length=HANDLE_MAX)]
AmountField = Annotated[str, Form(max_length=MAX_AMOUNT_CHARS)]
NoteField = Annotated[str, Form(max_length=MAX_NOTE_LENGTH)]
KeyField = Annotated[str, Form(max_length=IDEMPOTENCY_KEY_MAX)]
PinField = Annotated[str, Form(max_length=PIN_MAX)]
PayloadField = Annotated[str, Form(max_length=PAYLOAD_MAX)]


def new_key() -> str:
    return str(uuid.uuid4())


def _key_after(error: BillfoldError, key: str) -> str:
    return key if isinstance(error, KEEP_KEY) else new_key()


def _to_movement(request: Request, transfer_id: str) -> Response:
    response = RedirectResponse(f"/app/transfers/{transfer_id}", status_code=303)
    return pages.harden(request, response)


# --- send to a person -------------------------------------------------------------------------


@router.get("/app/send")
async def send_page(request: Request, user: WebUser, to: str = "") -> Response:
    """The form: who (username, email or phone), how much, a note."""
    form = {"recipient": to[:HANDLE_MAX], "amount": "", "note": "", "key": new_key()}
    return pages.render(request, "wallet/send.html", form=form)


@router.post("/app/send")
async def send(
    request: Request,
    user: Poster,
    recipient: Handle = "",
    amount: AmountField = "",
    note: NoteField = "",
    idempotency_key: KeyField = "",
) -> Response:
    """Send as POST /api/v1/transfers does (p2p.send_money, the same limits and risk gate);
    then the movement's page: completed, waiting for the PIN, or held for review."""
    state = request.app.state
    sending = p2p.SendMoney(
        sender_id=str(user.id),
        recipient=recipient.strip(),
        amount=amount.strip(),
        note=note or None,
        idempotency_key=idempotency_key or None,
    )
    payments = p2p.Payments(state.pool, state.ledger, state.users, risk_gate(request))
    try:
        await limit_money(request, user.id)
        view, _ = await p2p.send_money(payments, user.id, sending, web_origin(request, user))
    except BillfoldError as error:
        form = {
            "recipient": recipient,
            "amount": amount,
            "note": note,
            "key": _key_after(error, idempotency_key),
        }
        return pages.render(
            request, "wallet/send.html", status=error.status, form=form, error=error
        )
    return _to_movement(request, view["transfer_id"])


# --- pay a business ---------------------------------------------------------------------------


@router.get("/app/pay")
async def pay_page(request: Request, user: WebUser) -> Response:
    """Scan a code with the camera, read it from a picture, or paste its text."""
    return pages.render(request, "wallet/pay.html", form={"payload": "", "key": new_key()})


@router.post("/app/pay/preview")
async def preview(request: Request, user: Poster, payload: PayloadField = "") -> Response:
    """What the code says (merchant, and amount if it carries one), read as a payment reads
    it (merchants.qr): a code that is not one is refused naming its field."""
    form = {"payload": payload.strip(), "amount": "", "note": "", "key": new_key()}
    try:
        code = qr.decode(form["payload"])
    except ValidationFailed as error:
        return pages.render(request, "wallet/pay.html", status=error.status, form=form, error=error)
    return pages.render(request, "wallet/pay.html", form=form, code=code)


@router.post("/app/pay")
async def pay_merchant(
    request: Request,
    user: Poster,
    payload: PayloadField = "",
    amount: AmountField = "",
    note: NoteField = "",
    idempotency_key: KeyField = "",
) -> Response:
    """Pay as POST /api/v1/payments does (merchants.payments.pay); then the movement's page."""
    state = request.app.state
    paying = PaymentRequest(
        qr_payload=payload.strip(),
        session_id=None,
        amount=amount.strip() or None,
        note=note or None,
        idempotency_key=idempotency_key or None,
    )
    try:
        await limit_money(request, user.id)
        view, _ = await pay(
            state.merchants, risk_gate(request), user, paying, web_origin(request, user)
        )
    except BillfoldError as error:
        form = {
            "payload": payload,
            "amount": amount,
            "note": note,
            "key": _key_after(error, idempotency_key),
        }
        code = _readable(payload)
        return pages.render(
            request, "wallet/pay.html", status=error.status, form=form, code=code, error=error
        )
    return _to_movement(request, view["transfer_id"])


def _readable(payload: str) -> qr.Payload | None:
    """The code, to show it again beside a refusal of its payment; None if it is not one."""
    try:
        return qr.decode(payload.strip())
    except ValidationFailed:
        return None


# --- a movement, and its PIN ------------------------------------------------------------------


@router.get("/app/transfers/{transfer_id}")
async def movement(request: Request, user: WebUser, transfer_id: str) -> Response:
    """A transfer the person took part in, as GET /api/v1/transfers/{id} reads it, naming the
    other person or the business. An add-funds or cash-out (a uuid, as the API knows it too)
    has its own page: /app/movements/{id}."""
    state = request.app.state
    if len(transfer_id) > ID_MAX:
        raise TransferNotFound(f"transfer '{transfer_id[:40]}' does not exist")
    if risk_holds.is_movement_id(transfer_id):
        return pages.harden(
            request, RedirectResponse(f"/app/movements/{transfer_id}", status_code=303)
        )
    view = await held.show_transfer_named(state.pool, state.ledger, user, transfer_id)
    return pages.render(request, "wallet/movement.html", view=view)


@router.post("/app/transfers/{transfer_id}/verify")
async def verify(request: Request, user: Poster, transfer_id: str, pin: PinField = "") -> Response:
    """The PIN for a transfer held for verification, as POST /api/v1/transfers/{id}/verify
    takes it: right, it goes on (or to review, for a PIN changed within a day); the third
    wrong one declines it and the money is back. (An add-funds' or cash-out's PIN goes to
    /app/movements/{id}/verify.)"""
    state = request.app.state
    if len(transfer_id) > ID_MAX:
        raise TransferNotFound(f"transfer '{transfer_id[:40]}' does not exist")
    try:
        await limit_money(request, user.id)
        await held.verify_transfer(state.pool, state.ledger, user, transfer_id, pin)
    except risk_held.NotPending:
        # Decided already (a PIN sent twice, a review meanwhile): its page says how.
        return _to_movement(request, transfer_id)
    except WrongPin as error:
        outcome: dict[str, Any] = {
            "transfer_id": transfer_id,
            "status": error.fields.get("transfer_status"),
            "attempts_left": error.fields.get("attempts_left"),
        }
        return pages.render(
            request, "wallet/verify.html", status=error.status, outcome=outcome, error=error
        )
    except BillfoldError as error:
        outcome = {"transfer_id": transfer_id, "status": None, "attempts_left": None}
        return pages.render(
            request, "wallet/verify.html", status=error.status, outcome=outcome, error=error
        )
    return _to_movement(request, transfer_id)
