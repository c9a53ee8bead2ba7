"""The write path of a payment to a merchant, from the parsed request to the ledger's answer.

`check_pay` reads what the payer names (a static code and an amount, a dynamic code, or a
checkout session) and refuses what cannot be paid; `do_pay` claims the session (if any: of
concurrent payers one goes on), has the payment scored at the risk gate (kind
`merchant_payment`, the merchant's owner its counterparty), then moves the money in one ledger
transfer of three legs (the payer's price, the merchant's share, the fee), or holds it the same
way for a step-up or a review (merchants.holds resolves it). The payment's row, and its
session's paid mark, are written by the ledger in that transfer's transaction
(merchants.records); a retry with the same key answers what the first request made.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

import asyncpg

from billfold.events import outbox
from billfold.ledger.errors import DebtOutstanding, IdempotencyKeyReused, LedgerError
from billfold.ledger.model import Leg, SideRow, Transfer
from billfold.merchants import checkout, qr, records
from billfold.merchants.events import (
    DECLINED_BY_RISK,
    PaymentFacts,
    completed_event,
    held_event,
    payment_event,
    session_event,
)
from billfold.merchants.fees import merchant_fee_minor
from billfold.merchants.profiles import Merchant, MerchantSuspended, get_merchant
from billfold.merchants.service import Merchants
from billfold.merchants.views import PAYMENT_SELECT, payment_view
from billfold.platform import db
from billfold.platform.currency import WALLET_CURRENCY, format_amount
from billfold.platform.errors import BillfoldError, ValidationFailed, WalletFrozen
from billfold.platform.logging import get_logger
from billfold.risk import held as risk_held
from billfold.risk.assessments import never_moved
from billfold.risk.gate import DeclinedByRisk, Gate, KeyInFlight, Movement, Origin, Verdict
from billfold.wallet.debts import collect, debt_outstanding
from billfold.wallet.money import parse_amount
from billfold.wallet.p2p import IdempotencyKeyInUse
from billfold.wallet.refusals import in_wallet_terms
from billfold.wallet.transfers import MAX_NOTE_LENGTH, ledger_client
from billfold.wallet.users import User

log = get_logger("billfold.merchants.payments")

PAYMENT_CODE = "merchant_payment"
# Payment ids are derived from the payer and their idempotency key: a retry names the same
# payment, so the ledger sees the same request (its metadata holds the id).
_PAYMENT_IDS = uuid.UUID("6d3a1f0e-8c4b-5e7a-9b2d-0f1e2d3c4b5a")
View = tuple[dict[str, Any], bool]  # a payment's public form, and whether it is a replay


class SelfPayment(BillfoldError):
    code = "self_payment"
    status = 422
    title = "Cannot pay your own merchant"


@dataclass(frozen=True)
class PaymentRequest:
    """A payment as the API read it: the body's fields, and the Idempotency-Key header's value
    or else the body's `idempotency_key`."""

    qr_payload: str | None
    session_id: str | None
    amount: object
    note: str | None
    idempotency_key: str | None


@dataclass(frozen=True)
class CheckedPayment:
    """A payment that may be scored: its merchant, session and amount found and checked."""

    payment_id: uuid.UUID
    payer: User
    merchant: Merchant
    session: checkout.Session | None
    amount_minor: int
    fee_minor: int
    note: str | None
    key: str
    movement: Movement

    @property
    def client(self) -> str:
        return ledger_client(self.payer)

    @property
    def claim(self) -> str:
        """The Redis key that claims the idempotency key while the request runs (as P2P's)."""
        return f"in-flight:{self.client}:{self.key}"

    def facts(self) -> PaymentFacts:
        return PaymentFacts(
            self.payment_id,
            self.merchant.id,
            self.merchant.name,
            self.merchant.owner_id,
            self.payer.id,
            self.amount_minor,
            WALLET_CURRENCY,
            self.session.id if self.session else None,
        )


async def pay(
    merchants: Merchants, gate: Gate, payer: User, request: PaymentRequest, origin: Origin
) -> View:
    """`check_pay` and `do_pay`, in a scoring slot (risk.gate.Gate.admission), as a P2P
    transfer runs."""
    async with gate.admission():
        checked = await check_pay(merchants, payer, request, origin)
        return await do_pay(merchants, gate, checked)


async def check_pay(
    merchants: Merchants, payer: User, request: PaymentRequest, origin: Origin
) -> CheckedPayment:
    """The request validated: one of a code and a session; an amount with a static code and
    none otherwise; a dynamic code whose merchant and amount are its session's; a merchant that
    exists and is active, and not the payer's own; the payer's wallet not frozen. Whether the
    session is open is the claim's to say (do_pay): a retry of a payment that paid it is
    answered. Takes no lock."""
    key = request.idempotency_key
    if not key:
        raise ValidationFailed(
            "an Idempotency-Key header (or idempotency_key field) is required",
            field="idempotency_key",
        )
    if request.note is not None and len(request.note) > MAX_NOTE_LENGTH:
        raise ValidationFailed(
            f"note is {len(request.note)} characters, at most {MAX_NOTE_LENGTH}", field="note"
        )
    if (request.qr_payload is None) == (request.session_id is None):
        raise ValidationFailed("give exactly one of qr_payload and session_id", field="qr_payload")
    session, amount_minor, merchant_id = await _what_is_paid(merchants.pool, request)
    merchant = await get_merchant(merchants.pool, merchant_id)
    if not merchant.active:
        raise MerchantSuspended(f"merchant {merchant.id} is suspended: it takes no payments")
    if payer.frozen:
        raise WalletFrozen("your wallet is frozen")
    if merchant.owner_id == payer.id:
        raise SelfPayment(
            f"merchant {merchant.id} is yours: money from your wallet to it is not a sale"
        )
    fee = merchant_fee_minor(amount_minor, merchants.fee_bps, merchants.fee_fixed_minor)
    movement = Movement(
        PAYMENT_CODE,
        str(payer.id),
        str(merchant.owner_id),
        amount_minor,
        WALLET_CURRENCY,
        ref=key,
        device_id=origin.device_id,
        country=origin.country,
        ip=origin.ip,
    )
    payment_id = uuid.uuid5(_PAYMENT_IDS, f"{payer.id}:{key}")
    return CheckedPayment(
        payment_id, payer, merchant, session, amount_minor, fee, request.note, key, movement
    )


async def _what_is_paid(
    pool: asyncpg.Pool, request: PaymentRequest
) -> tuple[checkout.Session | None, int, uuid.UUID]:
    """The session (if any), the amount and the merchant the request names."""
    if request.qr_payload is None:
        _no_amount(request.amount, "a checkout session")
        session = await checkout.get_session(pool, str(request.session_id))
        return session, session.amount_minor, session.merchant_id
    payload = qr.decode(request.qr_payload)
    if not payload.dynamic:
        if request.amount is None:
            raise ValidationFailed(
                "a static code carries no amount: give the amount to pay", field="amount"
            )
        return None, parse_amount(request.amount, WALLET_CURRENCY), payload.merchant_id
    _no_amount(request.amount, "a dynamic code")
    try:
        session_id = uuid.UUID(str(payload.session_id))
    except ValueError:
        raise ValidationFailed(
            "field 62.05 of the QR payload names no checkout session", field="qr_payload.62"
        ) from None
    session = await checkout.get_session(pool, session_id)
    if payload.merchant_id != session.merchant_id:
        raise ValidationFailed(
            "field 26 of the QR payload names another merchant than its session's",
            field="qr_payload.26",
        )
    if payload.amount_minor != session.amount_minor:
        shown = format_amount(session.amount_minor, session.currency)
        raise ValidationFailed(
            f"field 54 of the QR payload is not its session's amount ({shown})",
            field="qr_payload.54",
        )
    return session, session.amount_minor, session.merchant_id


def _no_amount(amount: object, what: str) -> None:
    if amount is not None:
        raise ValidationFailed(
            f"{what} carries its amount: give none (amount '{str(amount)[:30]}')", field="amount"
        )


async def do_pay(merchants: Merchants, gate: Gate, checked: CheckedPayment) -> View:
    """Pay: answer a retry from what its key made; else claim the session, have the payment
    scored, then move the money (or hold it). A decline, or any refusal, gives the session's
    claim up, so that another payer can pay at once.

    Locks: the session's claim (merchants.checkout.claim_session: a row lock for its UPDATE,
    then its claim columns) from before scoring until the payment is stored or refused; the
    idempotency key's claim in Redis while it is scored (as P2P's); the ledger locks the
    payer's wallet, the merchant account and fee revenue, in ascending account id order, in
    its own transaction."""
    first = await stored_payment(merchants.pool, checked)
    if first is not None:
        return first, True
    session = checked.session
    if session is not None:
        await checkout.claim_session(merchants.pool, session.id, checked.payer.id, checked.key)
    try:
        return await _score_and_pay(merchants, gate, checked)
    except IdempotencyKeyInUse:
        raise  # the claim is the running request's, with this very key
    except DeclinedByRisk:
        await _release(merchants, checked, declined=True)
        raise
    except BaseException:
        await _release(merchants, checked)
        raise


async def _score_and_pay(merchants: Merchants, gate: Gate, checked: CheckedPayment) -> View:
    verdict = await _score(merchants, gate, checked)
    if verdict is None:
        return await _answer_retry(merchants, checked)
    try:
        try:
            if verdict.action in risk_held.PENDING:
                return await _hold_for_risk(merchants, checked, verdict)
            transfer = await _move(merchants, checked)
        except IdempotencyKeyReused:
            # A late retry (its claim gone) scored differently: the first payment stands.
            first = await stored_payment(merchants.pool, checked)
            if first is None:
                raise
            return first, True
    except DebtOutstanding as refused:
        # Repaid first from what came in since; the refusal stands for this key either way.
        payer = checked.payer
        owed = await collect(merchants.pool, merchants.ledger, payer.id, payer.account_id)
        await _never_moved(merchants, verdict)
        raise debt_outstanding(owed).replaying(refused) from None
    except BaseException as error:
        # Not stored (refused, or the ledger busy): a retry may run at once, scored afresh.
        await gate.release(checked.claim)
        if isinstance(error, LedgerError | WalletFrozen) or not await _stored(merchants, checked):
            await _never_moved(merchants, verdict)
        raise
    view = payment_view(_made_row(checked, transfer, "COMPLETED"), payer_side=True)
    return view, transfer.replayed


async def _score(merchants: Merchants, gate: Gate, checked: CheckedPayment) -> Verdict | None:
    """The verdict on the payment (`decline` raises), or None for a retry of a request with its
    key that is running or stored (as wallet.p2p._score)."""
    try:
        return await gate.assess(checked.movement, checked.claim, admitted=True)
    except KeyInFlight:
        return None
    except DeclinedByRisk:
        if await merchants.ledger.has_outcome(checked.client, checked.key):
            return None
        await gate.release(checked.claim)
        raise
    except BaseException:
        await gate.release(checked.claim)
        raise


async def _answer_retry(merchants: Merchants, checked: CheckedPayment) -> View:
    """What the first request with this key made, without scoring again: its payment, or its
    stored refusal (the ledger replays it); 409 while it is still running."""
    first = await stored_payment(merchants.pool, checked)
    if first is not None:
        return first, True
    if not await merchants.ledger.has_outcome(checked.client, checked.key):
        raise IdempotencyKeyInUse(
            "a request with this idempotency key is still running; retry shortly",
            idempotency_key=checked.key[:64],
        )
    # A refusal: the ledger answers with it (a success would have its payment row).
    transfer = await _move(merchants, checked)
    return payment_view(_made_row(checked, transfer, "COMPLETED"), payer_side=True), True


def _legs(merchants: Merchants, checked: CheckedPayment) -> list[Leg]:
    """The payer pays the price; the merchant gets it less the fee; fee revenue the fee (no leg
    for a fee of 0)."""
    amount, fee, currency = checked.amount_minor, checked.fee_minor, WALLET_CURRENCY
    legs = [
        Leg(checked.payer.account_id, -amount, currency),
        Leg(checked.merchant.account_id, amount - fee, currency),
    ]
    if fee:
        legs.append(Leg(merchants.fee_revenue, fee, currency))
    return legs


def _metadata(checked: CheckedPayment) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "payment_id": str(checked.payment_id),
        "merchant_id": str(checked.merchant.id),
        "merchant_name": checked.merchant.name,
        "payer_id": str(checked.payer.id),
    }
    if checked.session is not None:
        metadata["session_id"] = str(checked.session.id)
    if checked.note:
        metadata["note"] = checked.note
    return metadata


def _recorded(checked: CheckedPayment, status: str) -> SideRow:
    return records.recorded(
        checked.payment_id,
        checked.merchant.id,
        checked.payer.id,
        checked.session.id if checked.session else None,
        checked.client,
        checked.key,
        (checked.amount_minor, checked.fee_minor, WALLET_CURRENCY),
        status,
        checked.note,
    )


async def _move(merchants: Merchants, checked: CheckedPayment) -> Transfer:
    """The payment's transfer, with its row, `payment.completed` and (paying a session) the
    session paid and `checkout.session.paid`, all in the ledger's transaction."""
    facts = checked.facts()
    rows = [_recorded(checked, "COMPLETED"), outbox.with_command(completed_event(facts))]
    if checked.session is not None:
        told = checked.session.facts(checked.merchant.name, checked.merchant.owner_id)
        paid = session_event("checkout.session.paid", told, "paid", checked.payment_id)
        rows.append(outbox.with_command(paid))
    payer = checked.payer
    with in_wallet_terms(payer.account_id, checked.amount_minor, WALLET_CURRENCY):
        return await merchants.ledger.transfer(
            checked.client,
            checked.key,
            _legs(merchants, checked),
            code=PAYMENT_CODE,
            metadata=_metadata(checked),
            rows=rows,
        )


async def _hold_for_risk(merchants: Merchants, checked: CheckedPayment, verdict: Verdict) -> View:
    """Reserve the payment's money, in the same three legs, for a payment the risk engine
    wants confirmed (the payer's PIN: POST /transfers/{transfer_id}/verify) or reviewed; its
    row is written with the hold, its session stays claimed, and it is told as `payment.held`
    (risk.held.record_hold). An assessment under which no hold is made is marked as such
    (as wallet.p2p._hold_for_risk)."""
    pool, ledger, assessment = merchants.pool, merchants.ledger, verdict.assessment_id
    if assessment is None:
        # The engine writes a held movement's assessment at once: its hold refers to it.
        raise LookupError(f"the {verdict.action} assessment of {checked.key[:64]} was not stored")
    status = risk_held.PENDING[verdict.action]
    try:
        with in_wallet_terms(checked.payer.account_id, checked.amount_minor, WALLET_CURRENCY):
            hold = await ledger.hold_legs(
                checked.client,
                checked.key,
                _legs(merchants, checked),
                code=PAYMENT_CODE,
                metadata=_metadata(checked),
                rows=[_recorded(checked, status)],
            )
    except Exception as error:
        if isinstance(error, LedgerError | WalletFrozen) or not await _stored(merchants, checked):
            await never_moved(pool, assessment)
        raise
    held = held_event(checked.facts(), hold.id, status)
    noted = await risk_held.record_hold(
        pool,
        hold.id,
        checked.amount_minor,
        sender_id=checked.payer.id,
        recipient_id=checked.merchant.owner_id,
        action=verdict.action,
        assessment_id=assessment,
        device_id=checked.movement.device_id,
        country=checked.movement.country,
        told=held,
    )
    first = await stored_payment(pool, checked)
    if first is None:  # written with the hold
        raise LookupError(f"payment {checked.payment_id} was not recorded with its hold")
    if not noted:
        await never_moved(pool, assessment)
        return first, True
    return first, hold.replayed


async def _stored(merchants: Merchants, checked: CheckedPayment) -> bool:
    return await merchants.ledger.stored_transfer(checked.client, checked.key) is not None


async def _never_moved(merchants: Merchants, verdict: Verdict) -> None:
    if verdict.assessment_id is not None:
        await never_moved(merchants.pool, verdict.assessment_id)


async def _release(
    merchants: Merchants, checked: CheckedPayment, *, declined: bool = False
) -> None:
    """Give the session's claim up (a paid session, or one whose payment is held, keeps it);
    a payment the risk checks declined is told as `payment.declined` (no payment was made: its
    `payment_id` is null) in the same transaction. A failure here is logged: the claim window
    voids the claim anyway."""
    session = checked.session
    try:
        async with merchants.pool.acquire() as conn, conn.transaction():
            if session is not None:
                await checkout.release_claim(conn, session.id, checked.payer.id, checked.key)
            if declined:
                facts = replace(checked.facts(), payment_id=None)
                told = payment_event("payment.declined", facts, "DECLINED", reason=DECLINED_BY_RISK)
                await outbox.write(conn, [told])
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        log.warning("checkout claim not released", error=str(error))


async def stored_payment(pool: asyncpg.Pool, checked: CheckedPayment) -> dict[str, Any] | None:
    """The payment this payer's key made, as the payer sees it now, if it is this same request
    (merchant, amount, session, note); IdempotencyKeyReused if the key made another; None if
    it made none."""
    row = await db.fetchrow(
        pool,
        PAYMENT_SELECT + " WHERE p.payer_id = $1 AND p.idempotency_key = $2",
        checked.payer.id,
        checked.key,
    )
    if row is None:
        return None
    session_id = checked.session.id if checked.session else None
    same = (row["merchant_id"], row["amount_minor"], row["session_id"], row["note"]) == (
        checked.merchant.id,
        checked.amount_minor,
        session_id,
        checked.note,
    )
    if not same:
        raise IdempotencyKeyReused(
            f"idempotency key '{checked.key[:64]}' was used for another request",
            idempotency_key=checked.key[:64],
        )
    return payment_view(row, payer_side=True)


def _made_row(checked: CheckedPayment, transfer: Transfer, status: str) -> dict[str, Any]:
    """The payment's row as RECORD writes it, from the request and its transfer."""
    return {
        "id": checked.payment_id,
        "merchant_id": checked.merchant.id,
        "merchant_name": checked.merchant.name,
        "session_id": checked.session.id if checked.session else None,
        "transfer_id": transfer.id,
        "amount_minor": checked.amount_minor,
        "fee_minor": checked.fee_minor,
        "currency": WALLET_CURRENCY,
        "status": status,
        "note": checked.note,
        "created_at": transfer.created_at,
    }
