"""The write path of a person-to-person transfer, from the parsed request to the ledger's answer.

`check_send_money` resolves the sender and the recipient and validates the request;
`do_send_money` has it scored at the risk gate (claiming its idempotency key in the same Redis
round trip), then moves the money, or holds it for a step-up or a review, and answers a retry
with what the first request with its key did. `send_money` runs the two in a scoring slot.

Exactly-once is the ledger's: it stores each outcome, a refusal too, under the sender's
idempotency key. The claim in Redis only turns a concurrent retry's wait into a clear 409.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from billfold.funding.collections import collect, debt_outstanding
from billfold.ledger.engine import Ledger
from billfold.ledger.errors import DebtOutstanding, IdempotencyKeyReused, LedgerError
from billfold.ledger.model import Kind, Transfer
from billfold.platform.errors import BillfoldError, NotFound, ValidationFailed
from billfold.risk import held as risk_held
from billfold.risk.assessments import never_moved
from billfold.risk.gate import DeclinedByRisk, Gate, KeyInFlight, Movement, Origin, Verdict
from billfold.wallet.transfers import (
    P2PRequest,
    check_p2p,
    do_p2p,
    ledger_client,
    parse_user_id,
    transfer_view,
)
from billfold.wallet.users import WALLET_CURRENCY, UserCache

View = tuple[dict[str, Any], bool]  # a transfer's public form, and whether it is a replay


class IdempotencyKeyInUse(BillfoldError):
    code = "idempotency_key_in_use"
    status = 409
    title = "A request with this idempotency key is still running"


@dataclass(frozen=True)
class Payments:
    """What the P2P path works with: the database, the ledger, the user cache and the risk gate
    (built for each request: see risk.gate.Gate)."""

    pool: asyncpg.Pool
    ledger: Ledger
    users: UserCache
    gate: Gate


@dataclass(frozen=True)
class SendMoney:
    """A transfer request as the API read it: the body's fields, and the Idempotency-Key header's
    value or else the body's `idempotency_key`."""

    sender_id: str
    recipient: str
    amount: object
    note: str | None
    idempotency_key: str | None


@dataclass(frozen=True)
class CheckedSend:
    """A transfer request that may be scored: its parties found, its amount read."""

    p2p: P2PRequest
    key: str
    movement: Movement
    client: str  # the sender, as a client of the ledger
    claim: str  # the Redis key that claims the idempotency key while the request runs


async def send_money(
    payments: Payments, user_id: uuid.UUID, request: SendMoney, origin: Origin
) -> View:
    """`check_send_money` and `do_send_money`, in a scoring slot (risk.gate.Gate.admission): the
    transfer waits for one before its scoring budget starts, and holds it until the ledger
    answers."""
    async with payments.gate.admission():
        send = await check_send_money(payments, user_id, request, origin)
        return await do_send_money(payments, send)


async def check_send_money(
    payments: Payments, user_id: uuid.UUID, request: SendMoney, origin: Origin
) -> CheckedSend:
    """The request validated, its sender (the caller, `user_id`) and recipient found and
    neither frozen (wallet.transfers.check_p2p). Takes no lock."""
    key = request.idempotency_key
    if not key:
        raise ValidationFailed(
            "an Idempotency-Key header (or idempotency_key field) is required",
            field="idempotency_key",
        )
    if parse_user_id(request.sender_id) != user_id:
        raise NotFound(
            f"wallet '{request.sender_id[:64]}' does not exist", user_id=request.sender_id
        )
    p2p = await check_p2p(
        payments.pool, payments.users, user_id, request.recipient, request.amount, request.note
    )
    movement = Movement(
        "p2p",
        str(p2p.sender.id),
        str(p2p.recipient.id),
        p2p.amount_minor,
        WALLET_CURRENCY,
        ref=key,
        device_id=origin.device_id,
        country=origin.country,
        ip=origin.ip,
    )
    client = ledger_client(p2p.sender)
    return CheckedSend(p2p, key, movement, client, f"in-flight:{client}:{key}")


async def do_send_money(payments: Payments, send: CheckedSend) -> View:
    """Score the transfer, then move the money (or hold it, for a step-up or a review); or
    answer a retry as the first request with its key was answered.

    Locks: the idempotency key's claim in Redis (CLAIM_TTL_MS), set with the scoring and
    removed when nothing is stored, so that a retry can run at once; the ledger locks the two
    wallets, in ascending account id order, in its batch's transaction. A refusal for money
    owed first repays it from what came in since (funding.collections: the user's advisory
    lock)."""
    p2p, key = send.p2p, send.key
    verdict = await _score(payments, send)
    if verdict is None:
        return await _answer_retry(payments, send)
    try:
        try:
            if verdict.action in risk_held.PENDING:
                return await _hold_for_risk(payments, send, verdict)
            # The assessment is written with the transfer (RulesEngine's with_transfers).
            rows = (verdict.with_transfer,) if verdict.with_transfer else ()
            transfer = await do_p2p(payments.ledger, p2p, key, rows=rows)
        except IdempotencyKeyReused:
            # A late retry (its claim gone) scored differently from the first try: the first
            # one's transfer or hold stands, if it is this same request.
            first = await _same_request(payments, send)
            return await _view_of_first(payments, first, p2p.sender.account_id), True
    except DebtOutstanding as refused:
        # Repaid first from what came in since; the refusal stands for this key either way.
        sender = p2p.sender
        owed = await collect(
            payments.pool, payments.ledger, sender.id, sender.account_id, WALLET_CURRENCY
        )
        raise debt_outstanding(owed, WALLET_CURRENCY).replaying(refused) from None
    except BaseException:
        # The outcome may not be stored (the ledger was busy, the request was cancelled): a
        # retry must be able to run at once. A stored failure is replayed.
        await payments.gate.release(send.claim)
        raise
    return transfer_view(transfer, p2p.sender.account_id), transfer.replayed


async def _score(payments: Payments, send: CheckedSend) -> Verdict | None:
    """The verdict on the transfer, scored before money moves (`decline` raises here), or None
    when it is a retry that the first request's answer answers.

    The request claims its key in flight in the same Redis round trip that scores it: a second
    request with the key, while the first runs or just after, is not scored again. A claim that
    succeeded stays (a retry then finds the stored outcome); one that failed is removed, so that
    a retry can run at once."""
    gate = payments.gate
    try:
        return await gate.assess(send.movement, send.claim, admitted=True)
    except KeyInFlight:
        return None
    except DeclinedByRisk:
        # A late retry (its claim gone) of a request that was stored, scored again and declined
        # this time: the first answer stands, as it does for any retry. Only a decline pays
        # for this lookup.
        if await payments.ledger.has_outcome(send.client, send.key):
            return None
        await gate.release(send.claim)
        raise
    except BaseException:
        # Declined, or scoring failed: nothing is stored, so a retry must be able to run at once.
        await gate.release(send.claim)
        raise


async def _answer_retry(payments: Payments, send: CheckedSend) -> View:
    """What the first request with this key did, without scoring it again: its transfer or
    hold, or its stored failure (the ledger replays both); 409 while it is still running."""
    ledger, key = payments.ledger, send.key
    stored = await ledger.stored_transfer(send.client, key)
    if stored is None and not await ledger.has_outcome(send.client, key):
        raise IdempotencyKeyInUse(
            "a request with this idempotency key is still running; retry shortly",
            idempotency_key=key,
        )
    sender = send.p2p.sender.account_id
    if stored is not None and stored.kind is Kind.HOLD:
        first = await _same_request(payments, send)
        return await _view_of_first(payments, first, sender), True
    # The ledger answers with what it stored, or refuses a key reused for another request.
    return transfer_view(await do_p2p(ledger, send.p2p, key), sender), True


async def _view_of_first(payments: Payments, first: Transfer, viewer: int) -> dict[str, Any]:
    if first.kind is Kind.HOLD:
        status = await risk_held.status_of(payments.pool, first.id)
        return transfer_view(first, viewer, status)
    return transfer_view(first, viewer)


async def _same_request(payments: Payments, send: CheckedSend) -> Transfer:
    """The transfer or hold this key made, if it moved the same amount to the same recipient;
    otherwise the key was reused for another request, and that is the error."""
    key = send.key
    first = await payments.ledger.stored_transfer(send.client, key)
    same = (
        first is not None
        and first.amount_minor == send.p2p.amount_minor
        and (first.metadata or {}).get("recipient_id") == str(send.p2p.recipient.id)
    )
    if first is None or not same:
        raise IdempotencyKeyReused(
            f"idempotency key '{key[:64]}' was used for another request", idempotency_key=key
        )
    return first


async def _hold_for_risk(payments: Payments, send: CheckedSend, verdict: Verdict) -> View:
    """Reserve the money for a transfer the risk engine wants confirmed or reviewed.

    The verdict's assessment is stored already (the hold refers to it). If no hold is made
    under it, it held nothing and is marked declined later, so that the next movements'
    features do not count money that never moved: when the ledger refuses the hold, or when
    a late retry (its claim gone, scored and held again) finds the first request's hold,
    which then answers as it stands now (waiting, verified, reviewed)."""
    p2p, pool, assessment = send.p2p, payments.pool, verdict.assessment_id
    if assessment is None:
        # The engine writes a held transfer's assessment at once: its hold refers to it.
        raise LookupError(f"the {verdict.action} assessment of {send.key[:64]} was not stored")
    try:
        hold = await do_p2p(payments.ledger, p2p, send.key, hold=True)
    except Exception as error:
        # Refused, or not stored (the ledger busy): a retry is scored afresh.
        refused = isinstance(error, LedgerError)
        if refused or await payments.ledger.stored_transfer(send.client, send.key) is None:
            await never_moved(pool, assessment)
        raise
    noted = await risk_held.record_hold(
        pool,
        hold.id,
        hold.amount_minor,
        sender_id=p2p.sender.id,
        recipient_id=p2p.recipient.id,
        action=verdict.action,
        assessment_id=assessment,
        device_id=send.movement.device_id,
        country=send.movement.country,
    )
    if not noted:
        await never_moved(pool, assessment)
        return await _view_of_first(payments, hold, p2p.sender.account_id), True
    status = risk_held.PENDING[verdict.action]
    return transfer_view(hold, p2p.sender.account_id, status), hold.replayed
