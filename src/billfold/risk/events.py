"""The events of P2P transfers the risk checks stop (events.outbox; the catalogue is
docs/events.md): held for the sender's PIN or for review (`transfer.held`), confirmed by the PIN
(`transfer.verified`), declined (`transfer.declined`), decided by an operator
(`review.decided`). Each is told to the sender (`user_id`), keyed by them so that their events
stay in order, and written in the transaction that records the change: the held transfer's row
(risk.held, wallet.held), or for a transfer refused at once the assessment that refused it
(risk.assessments.AssessmentLog). Reasons are codes, never the rules that fired: telling a
fraudster which rule caught them would teach them to step around it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from billfold.events import outbox
from billfold.platform.currency import WALLET_CURRENCY
from billfold.risk.gate import Movement

# What a held transfer waits for, by the verdict that held it and by its status.
WAITING_FOR = {
    "step_up": "verification",
    "review": "review",
    "PENDING_VERIFICATION": "verification",
    "PENDING_REVIEW": "review",
}
# Why a transfer was declined: refused at once by the risk checks, or held and then refused
# by its sender's third wrong PIN.
DECLINED_BY_RISK = "risk_checks"
DECLINED_BY_PIN = "wrong_pin"


def transfer_event(
    kind: str,
    hold_id: int,
    sender_id: uuid.UUID,
    recipient_id: uuid.UUID,
    amount_minor: int,
    **extra: Any,
) -> outbox.Event:
    """`kind` (transfer.held, transfer.verified, transfer.declined) of the held transfer whose
    ledger hold is `hold_id` (its public id), with `extra` in its data."""
    return outbox.Event(
        kind,
        f"transfer/{hold_id}",
        f"user/{sender_id}",
        datetime.now(UTC),
        {
            "transfer_id": str(hold_id),
            "user_id": str(sender_id),
            "to_user_id": str(recipient_id),
            "amount": outbox.amount(amount_minor, WALLET_CURRENCY),
            "currency": WALLET_CURRENCY,
            **extra,
        },
    )


def review_decided(
    hold_id: int, sender_id: uuid.UUID, amount_minor: int, *, approved: bool
) -> outbox.Event:
    """An operator approved or rejected the held transfer `hold_id`."""
    return outbox.Event(
        "review.decided",
        f"transfer/{hold_id}",
        f"user/{sender_id}",
        datetime.now(UTC),
        {
            "transfer_id": str(hold_id),
            "user_id": str(sender_id),
            "decision": "approved" if approved else "rejected",
            "amount": outbox.amount(amount_minor, WALLET_CURRENCY),
            "currency": WALLET_CURRENCY,
        },
    )


def declined_at_once(movement: Movement, at: datetime) -> outbox.Event:
    """A P2P transfer the risk checks refused before anything was held: it has no id."""
    return outbox.Event(
        "transfer.declined",
        f"user/{movement.user_id}",
        f"user/{movement.user_id}",
        at,
        {
            "transfer_id": None,
            "user_id": movement.user_id,
            "to_user_id": movement.counterparty_id,
            "amount": outbox.amount(movement.amount_minor, movement.currency),
            "currency": movement.currency,
            "reason": DECLINED_BY_RISK,
        },
    )
