"""Refunds: a merchant gives a payment's money back to its payer, in full or in parts, never
more than the payment altogether, from the merchant account.

The fee rule: the merchant's fee is not refunded. A refund moves the amount refunded from the
merchant account to the payer; the fee the payment paid stays in fee revenue (as card networks
and Stripe do: the cost of taking the payment was incurred). So a merchant that refunds a
payment in full pays back more than the payment brought it, by the fee.

A refund is reserved, then moved. The reservation (`_reserve`, a short transaction under the
payment's row lock) checks what is left to refund and records the refund PENDING, its amount
counted in the payment's `refunded_minor` at once: two refunds at once cannot both take what is
left. The ledger then moves the money, and in the same transaction completes the refund, or,
refusing it (the merchant account lacks the money), fails it and gives the reservation back
(COMPLETE, a side statement of the ledger's batch): the refund's status is never out of step
with the money. A reservation whose move never ran (the process died between the two) is
resumed by a retry with its key, or by `resume_pending` after STALE_AFTER_S.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from billfold.events import outbox
from billfold.ledger.engine import Ledger
from billfold.ledger.errors import IdempotencyKeyReused, InsufficientFunds, LedgerBusy
from billfold.merchants.profiles import Merchant, get_merchant, parse_id
from billfold.platform import leases
from billfold.platform.currency import format_amount
from billfold.platform.errors import BillfoldError, NotFound, ValidationFailed
from billfold.platform.logging import get_logger
from billfold.platform.tasks import raise_if_cancelling
from billfold.wallet.money import parse_amount
from billfold.wallet.users import get_user

log = get_logger("billfold.merchants")

MAX_REASON_LENGTH = 280
REFUND = "refund"
# A PENDING refund this old whose move never ran is resumed by resume_pending.
STALE_AFTER_S = 300
# The ledger's side statement that completes or fails a refund with its move (ledger.model
# SideRow): its parameters are the refunds' ids, the ledger clients and keys of their moves,
# and, added by the ledger, whether it refused each move.
COMPLETE_NAME = "billfold_complete_refunds"
COMPLETE = """
WITH r AS (
    SELECT * FROM unnest($1::text::uuid[], $2::text::text[], $3::text::text[],
                         $4::text::boolean[]) AS r(refund_id, client_id, key, refused)
), done AS (
    UPDATE merchant_refunds m
       SET status = CASE WHEN r.refused THEN 'FAILED' ELSE 'COMPLETED' END,
           transfer_id = CASE WHEN r.refused THEN NULL ELSE k.transfer_id END,
           completed_at = now()
      FROM r LEFT JOIN idempotency_keys k ON k.client_id = r.client_id AND k.key = r.key
     WHERE m.id = r.refund_id AND m.status = 'PENDING'
 RETURNING m.payment_id, m.amount_minor, m.status
)
UPDATE merchant_payments p SET refunded_minor = p.refunded_minor - given_back.amount_minor
  FROM (SELECT payment_id, sum(amount_minor) AS amount_minor FROM done
         WHERE status = 'FAILED' GROUP BY payment_id) given_back
 WHERE p.id = given_back.payment_id
"""
SIDE_STATEMENTS = {COMPLETE_NAME: COMPLETE}
_REFUND_COLUMNS = """id, payment_id, merchant_id, transfer_id, amount_minor, currency, reason,
status, idempotency_key, created_at, completed_at"""


class PaymentNotRefundable(BillfoldError):
    code = "payment_not_refundable"
    status = 409
    title = "The payment cannot be refunded"


class RefundExceedsPayment(BillfoldError):
    code = "refund_exceeds_payment"
    status = 422
    title = "The refund is more than is left of the payment"


@dataclass(frozen=True)
class RefundRequest:
    """A refund as the API read it."""

    payment_id: str
    amount: object | None
    reason: str | None
    idempotency_key: str | None


@dataclass(frozen=True)
class CheckedRefund:
    merchant: Merchant
    payment_id: uuid.UUID
    amount_minor: int | None  # None: what is left of the payment
    reason: str | None
    key: str


@dataclass(frozen=True)
class Refund:
    """A refund's row, and what its move needs."""

    id: uuid.UUID
    payment_id: uuid.UUID
    merchant_id: uuid.UUID
    transfer_id: int | None
    amount_minor: int
    currency: str
    reason: str | None
    status: str
    idempotency_key: str
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Refund:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


def ledger_client(merchant_id: uuid.UUID) -> str:
    """Each merchant is a client of the ledger: its refunds' keys are its own."""
    return f"merchant:{merchant_id}"


def check_refund(
    merchant: Merchant, request: RefundRequest, currency: str = "USD"
) -> CheckedRefund:
    """The request validated: a key, an amount if one is given, a reason of at most
    MAX_REASON_LENGTH. Takes no lock."""
    key = request.idempotency_key
    if not key:
        raise ValidationFailed("an Idempotency-Key header is required", field="idempotency_key")
    if request.reason is not None and len(request.reason) > MAX_REASON_LENGTH:
        raise ValidationFailed(
            f"reason is {len(request.reason)} characters, at most {MAX_REASON_LENGTH}",
            field="reason",
        )
    amount = None if request.amount is None else parse_amount(request.amount, currency)
    payment_id = parse_id(request.payment_id, "payment", "payment_id")
    return CheckedRefund(merchant, payment_id, amount, request.reason, key)


async def do_refund(
    pool: asyncpg.Pool, ledger: Ledger, checked: CheckedRefund
) -> tuple[dict[str, Any], bool]:
    """Reserve the refund and move its money (see the module's docstring); its public form, and
    whether it is an earlier request's (a retry with the key).

    Locks: the payment's row (FOR UPDATE) for the reservation's transaction only; then the
    ledger locks the merchant account and the payer's wallet, in ascending account id order, in
    its batch's transaction, which also updates the refund's and (failed) the payment's rows."""
    refund, replayed = await _reserve(pool, checked)
    if refund.status == "COMPLETED":
        return refund_view(refund), True
    # PENDING (new, or a reservation whose move has not run) or FAILED (the ledger answers a
    # retry with the refusal it stored: raised here as the first request's was).
    refund = await _move(pool, ledger, checked.merchant, refund)
    return refund_view(refund), replayed


async def _reserve(pool: asyncpg.Pool, checked: CheckedRefund) -> tuple[Refund, bool]:
    """The refund under the request's key: the one made before (a retry: it must be for the same
    payment and amount) or a new one, reserved."""
    merchant = checked.merchant
    async with pool.acquire() as conn, conn.transaction():
        payment = await conn.fetchrow(
            """SELECT id, amount_minor, refunded_minor, currency, status FROM merchant_payments
                WHERE id = $1 AND merchant_id = $2 FOR UPDATE""",
            checked.payment_id,
            merchant.id,
        )
        if payment is None:
            raise payment_not_found(checked.payment_id)
        row = await conn.fetchrow(
            f"""SELECT {_REFUND_COLUMNS} FROM merchant_refunds
                 WHERE merchant_id = $1 AND idempotency_key = $2""",
            merchant.id,
            checked.key,
        )
        if row is not None:
            earlier = Refund.from_row(row)
            if earlier.payment_id != checked.payment_id or checked.amount_minor not in (
                None,
                earlier.amount_minor,
            ):
                raise IdempotencyKeyReused(
                    f"idempotency key '{checked.key[:64]}' was used for another refund",
                    idempotency_key=checked.key[:64],
                )
            return earlier, True
        if payment["status"] != "COMPLETED":
            raise PaymentNotRefundable(
                f"payment {checked.payment_id} is {payment['status']}: only a completed"
                " payment can be refunded",
                payment_id=str(checked.payment_id),
                payment_status=payment["status"],
            )
        left = payment["amount_minor"] - payment["refunded_minor"]
        amount = left if checked.amount_minor is None else checked.amount_minor
        currency = payment["currency"]
        if left == 0:
            raise PaymentNotRefundable(
                f"payment {checked.payment_id} is refunded in full already",
                payment_id=str(checked.payment_id),
                payment_status="REFUNDED",
            )
        if amount > left:
            raise RefundExceedsPayment(
                f"amount {format_amount(amount, currency)} is more than the"
                f" {format_amount(left, currency)} left to refund of this payment",
                field="amount",
                amount=format_amount(amount, currency),
                refundable=format_amount(left, currency),
            )
        row = await conn.fetchrow(
            f"""INSERT INTO merchant_refunds (id, payment_id, merchant_id, amount_minor, currency,
                    reason, idempotency_key)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_REFUND_COLUMNS}""",
            uuid.uuid4(),
            checked.payment_id,
            merchant.id,
            amount,
            currency,
            checked.reason,
            checked.key,
        )
        await conn.execute(
            "UPDATE merchant_payments SET refunded_minor = refunded_minor + $2 WHERE id = $1",
            checked.payment_id,
            amount,
        )
    assert row is not None
    return Refund.from_row(row), False


async def _move(pool: asyncpg.Pool, ledger: Ledger, merchant: Merchant, refund: Refund) -> Refund:
    """Move a reserved refund's money, completing it in the ledger's transaction (or failing it:
    the ledger's refusal is raised, InsufficientFunds when the merchant account lacks the
    money). Answers the refund as it stands after."""
    payer_id = await pool.fetchval(
        "SELECT payer_id FROM merchant_payments WHERE id = $1", refund.payment_id
    )
    payer = await get_user(pool, payer_id)
    client = ledger_client(merchant.id)
    told = refund_completed(merchant, refund, payer_id)
    with in_merchant_terms(merchant.account_id, refund.amount_minor, refund.currency):
        await ledger.move(
            client,
            refund.idempotency_key,
            debit_account_id=merchant.account_id,
            credit_account_id=payer.account_id,
            amount_minor=refund.amount_minor,
            currency=refund.currency,
            code=REFUND,
            metadata={
                "refund_id": str(refund.id),
                "payment_id": str(refund.payment_id),
                "merchant_id": str(merchant.id),
                "merchant_name": merchant.name,
                "payer_id": str(payer_id),
                **({"reason": refund.reason} if refund.reason else {}),
            },
            rows=(
                (COMPLETE_NAME, (str(refund.id), client, refund.idempotency_key)),
                outbox.with_command(told),
            ),
        )
    row = await pool.fetchrow(
        f"SELECT {_REFUND_COLUMNS} FROM merchant_refunds WHERE id = $1", refund.id
    )
    assert row is not None
    return Refund.from_row(row)


@contextmanager
def in_merchant_terms(account_id: int, amount_minor: int, currency: str) -> Iterator[None]:
    """The ledger's refusal of a refund for want of money (a replay of it too), said to the
    merchant: its account's available balance and the refund's amount, never the ledger's
    account id or raw minor units (as wallet.refusals says a person's)."""
    try:
        yield
    except InsufficientFunds as error:
        if error.fields.get("account_id") != account_id:
            raise
        available = format_amount(int(error.fields.get("available_minor", 0)), currency)
        needed = format_amount(amount_minor, currency)
        said = InsufficientFunds(
            f"the merchant account's available balance is {available} {currency}; the refund"
            f" needs {needed} {currency}",
            available=available,
            needed=needed,
            currency=currency,
        )
        raise said.replaying(error) from None


async def resume_pending(
    pool: asyncpg.Pool, ledger: Ledger, older_than_s: float = STALE_AFTER_S
) -> int:
    """Move the refunds reserved more than `older_than_s` ago whose move never ran (the process
    that reserved one died before the ledger answered, and no retry came): the merchant asked
    for them. How many were moved (a refusal fails the refund, as it would have then). One
    node of the fleet resumes at a time (platform.leases); another's round meanwhile does
    nothing, and a refund's ledger key keeps it moved once even so."""
    async with leases.lease(pool, leases.REFUND_RESUME) as held:
        return await _resume_pending(pool, ledger, older_than_s) if held else 0


async def _resume_pending(pool: asyncpg.Pool, ledger: Ledger, older_than_s: float) -> int:
    rows = await pool.fetch(
        f"""SELECT {_REFUND_COLUMNS} FROM merchant_refunds
             WHERE status = 'PENDING' AND created_at < now() - make_interval(secs => $1)
             ORDER BY created_at LIMIT 100""",
        float(older_than_s),
    )
    moved = 0
    for row in rows:
        refund = Refund.from_row(row)
        merchant = await get_merchant(pool, refund.merchant_id)
        try:
            await _move(pool, ledger, merchant, refund)
        except BillfoldError as refused:
            log.info("pending refund refused", refund_id=str(refund.id), code=refused.code)
        moved += 1
    return moved


async def keep_resuming(pool: asyncpg.Pool, ledger: Ledger, interval_s: float = 60.0) -> None:
    """resume_pending every `interval_s`, for as long as the process serves. A refund is moved
    once whichever processes resume it (its ledger key); a failed round is logged and the next
    one tries again."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            resumed = await resume_pending(pool, ledger)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, LedgerBusy) as error:
            raise_if_cancelling()
            log.warning("pending refunds not resumed", error=str(error))
            continue
        if resumed:
            log.info("pending refunds resumed", count=resumed)


async def get_refund(pool: asyncpg.Pool, merchant: Merchant, refund_id: str) -> dict[str, Any]:
    found = parse_id(refund_id, "refund", "refund_id")
    row = await pool.fetchrow(
        f"SELECT {_REFUND_COLUMNS} FROM merchant_refunds WHERE id = $1 AND merchant_id = $2",
        found,
        merchant.id,
    )
    if row is None:
        raise NotFound(f"refund '{refund_id[:40]}' does not exist", refund_id=refund_id[:40])
    return refund_view(Refund.from_row(row))


async def list_refunds(
    pool: asyncpg.Pool, merchant: Merchant, payment_id: str
) -> list[dict[str, Any]]:
    """A payment's refunds, oldest first (failed ones too: their status says so)."""
    payment = parse_id(payment_id, "payment", "payment_id")
    exists = await pool.fetchval(
        "SELECT true FROM merchant_payments WHERE id = $1 AND merchant_id = $2",
        payment,
        merchant.id,
    )
    if not exists:
        raise payment_not_found(payment_id)
    rows = await pool.fetch(
        f"""SELECT {_REFUND_COLUMNS} FROM merchant_refunds WHERE payment_id = $1
             ORDER BY created_at, id""",
        payment,
    )
    return [refund_view(Refund.from_row(row)) for row in rows]


def payment_not_found(payment_id: object) -> NotFound:
    text = str(payment_id)[:40]
    return NotFound(f"payment '{text}' does not exist", payment_id=text)


def refund_completed(merchant: Merchant, refund: Refund, payer_id: uuid.UUID) -> outbox.Event:
    """`refund.completed`, told to the merchant's owner and the payer; written by the ledger
    with the refund's move, unless it refuses it."""
    return outbox.Event(
        "refund.completed",
        f"refund/{refund.id}",
        f"merchant/{merchant.id}",
        datetime.now(UTC),
        {
            "refund_id": str(refund.id),
            "payment_id": str(refund.payment_id),
            "merchant_id": str(merchant.id),
            "merchant_name": merchant.name,
            "owner_id": str(merchant.owner_id),
            "payer_id": str(payer_id),
            "amount": outbox.amount(refund.amount_minor, refund.currency),
            "currency": refund.currency,
            "reason": refund.reason,
        },
    )


def refund_view(refund: Refund) -> dict[str, Any]:
    return {
        "refund_id": str(refund.id),
        "payment_id": str(refund.payment_id),
        "amount": format_amount(refund.amount_minor, refund.currency),
        "currency": refund.currency,
        "status": refund.status,
        "reason": refund.reason,
        "created_at": refund.created_at.isoformat(),
    }
