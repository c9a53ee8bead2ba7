"""The events of checkout sessions and merchant payments (events.outbox; the catalogue is
docs/events.md). Each names the merchant's owner (`owner_id`), and a payment's the payer
(`payer_id`) too: webhooks deliver to both (webhooks.fanout.PEOPLE). They are keyed by the
merchant, so that a merchant's sessions and payments are published in the order they
happened. The fee is not in them: the payer is told of the price only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billfold.events import outbox

# Why a payment was declined: refused at once by the risk checks, held and then refused by its
# payer's third wrong PIN, or rejected by an operator's review.
DECLINED_BY_RISK = "risk_checks"
DECLINED_BY_PIN = "wrong_pin"
DECLINED_BY_REVIEW = "review"
# What a held payment waits for, by its status.
WAITING_FOR = {"PENDING_VERIFICATION": "verification", "PENDING_REVIEW": "review"}


@dataclass(frozen=True)
class PaymentFacts:
    """What a payment's events say of it."""

    payment_id: uuid.UUID | None  # None: refused before anything was made
    merchant_id: uuid.UUID
    merchant_name: str
    owner_id: uuid.UUID
    payer_id: uuid.UUID
    amount_minor: int
    currency: str
    session_id: uuid.UUID | None


@dataclass(frozen=True)
class SessionFacts:
    """What a checkout session's events say of it."""

    session_id: uuid.UUID
    merchant_id: uuid.UUID
    merchant_name: str
    owner_id: uuid.UUID
    amount_minor: int
    currency: str
    reference: str | None
    expires_at: datetime


def payment_event(kind: str, payment: PaymentFacts, status: str, **extra: Any) -> outbox.Event:
    """`kind` (payment.completed, payment.held, payment.declined) of `payment`, its `status`
    after the change, with `extra` in its data (a held payment's `transfer_id`, the hold its
    payer confirms: POST /transfers/{transfer_id}/verify; `waiting_for`; a decline's
    `reason`)."""
    subject = f"payment/{payment.payment_id}" if payment.payment_id else _merchant(payment)
    return outbox.Event(
        kind,
        subject,
        _merchant(payment),
        datetime.now(UTC),
        {
            "payment_id": _text(payment.payment_id),
            "merchant_id": str(payment.merchant_id),
            "merchant_name": payment.merchant_name,
            "owner_id": str(payment.owner_id),
            "payer_id": str(payment.payer_id),
            "amount": outbox.amount(payment.amount_minor, payment.currency),
            "currency": payment.currency,
            "session_id": _text(payment.session_id),
            "status": status,
            **extra,
        },
    )


def session_event(
    kind: str, session: SessionFacts, status: str, payment_id: uuid.UUID | None = None
) -> outbox.Event:
    """`kind` (checkout.session.created, .paid, .expired, .canceled) of `session`, its `status`
    after the change; `payment_id`, the payment that paid it."""
    return outbox.Event(
        kind,
        f"checkout-session/{session.session_id}",
        f"merchant/{session.merchant_id}",
        datetime.now(UTC),
        {
            "session_id": str(session.session_id),
            "merchant_id": str(session.merchant_id),
            "merchant_name": session.merchant_name,
            "owner_id": str(session.owner_id),
            "amount": outbox.amount(session.amount_minor, session.currency),
            "currency": session.currency,
            "reference": session.reference,
            "status": status,
            "expires_at": session.expires_at.isoformat(),
            "payment_id": _text(payment_id),
        },
    )


def _merchant(payment: PaymentFacts) -> str:
    return f"merchant/{payment.merchant_id}"


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def completed_event(facts: PaymentFacts) -> outbox.Event:
    """`payment.completed`. It names the payment (`GET /payments/{id}` shows its transfer, an
    id the ledger gives when the command runs, after the event is made)."""
    return payment_event("payment.completed", facts, "COMPLETED")


def held_event(facts: PaymentFacts, hold_id: int, status: str) -> outbox.Event:
    """`payment.held`, with the hold its payer confirms (`transfer_id`) and what it waits for."""
    return payment_event(
        "payment.held", facts, status, transfer_id=str(hold_id), waiting_for=WAITING_FOR[status]
    )
