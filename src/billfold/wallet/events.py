"""The events of a person's standing and debts (events.outbox; the catalogue is docs/events.md):
`user.frozen` and `user.unfrozen` (wallet.standing), `debt.opened` and `debt.recovered`
(wallet.debts). Each is told to the person (`user_id`) and keyed by them, so that their
events stay in order. A reason is a code, never an operator's note or the rules that fired:
those stay in the audit trail, for operators.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from billfold.events import outbox
from billfold.platform.currency import WALLET_CURRENCY

# Why a user was frozen or unfrozen: by the risk engine (its rules, or repeated declines), by an
# operator's action, or by an operator's decision on a user the engine froze.
BY_RISK = "risk_checks"
BY_OPERATOR = "operator"
BY_REVIEW = "review"


def standing_changed(user_id: uuid.UUID, status: str, reason: str) -> outbox.Event:
    """`user.frozen` or `user.unfrozen` (`status`: the user's status after, frozen or active)."""
    kind = "user.frozen" if status == "frozen" else "user.unfrozen"
    return outbox.Event(
        kind,
        f"user/{user_id}",
        f"user/{user_id}",
        datetime.now(UTC),
        {"user_id": str(user_id), "reason": reason},
    )


def debt_changed(
    kind: str, user_id: uuid.UUID, amount_minor: int, outstanding_minor: int
) -> outbox.Event:
    """`debt.opened` (`amount_minor` newly owed) or `debt.recovered` (`amount_minor` repaid);
    `outstanding_minor`: what the person owes after it."""
    return outbox.Event(
        kind,
        f"user/{user_id}",
        f"user/{user_id}",
        datetime.now(UTC),
        {
            "user_id": str(user_id),
            "amount": outbox.amount(amount_minor, WALLET_CURRENCY),
            "currency": WALLET_CURRENCY,
            "outstanding": outbox.amount(outstanding_minor, WALLET_CURRENCY),
        },
    )
