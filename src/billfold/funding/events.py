"""The events of a funding movement, for the outbox, written in the transaction that changes the
movement's status. One change, one event, by what the movement is (docs/events.md):

- an add-funds (and a micro-deposit): `funding.pending`, `funding.settled`, `funding.returned`,
  and `funding.declined` when one the risk checks held is declined by wrong PINs or its card
  refuses the charge after its release;
- a cash-out: `cashout.requested`, `cashout.paid`, `cashout.returned`, `cashout.declined`
  (never `funding.*`);
- a merchant's payout: `payout.requested`, `payout.paid`, `payout.returned`, `payout.declined`
  (never `cashout.*` nor `funding.*`), told to the merchant's owner and naming the merchant;
- a card add-funds charged back: `card.chargeback` (not `funding.returned` as well).

Each is told to the movement's person and keyed by them (their events stay in order). No bank
account or card number is in them: the movement's and its source's ids only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from billfold.events import outbox
from billfold.funding.service import FundingTransfer

# A cash-out's event for each status of its movement.
CASH_OUT = {
    "pending": "requested",
    "settled": "paid",
    "returned": "returned",
    "declined": "declined",
}
# Why a held movement was declined (a `*.declined` event's `reason`); an operator's rejection is
# told by `review.decided` alone.
WRONG_PIN = "wrong_pin"
CARD_DECLINED = "card_declined"
# A chargeback's reason when the card processor gives none.
CHARGEBACK = "chargeback"


def funding_event(status: str, ft: FundingTransfer, reason: str | None = None) -> outbox.Event:
    """The event of the movement's new `status` (pending, settled, returned, declined);
    `reason`: a chargeback's, as the card processor gave it, or a decline's (WRONG_PIN,
    CARD_DECLINED)."""
    if ft.purpose == "payout":
        return payout_event(status, ft, reason)
    base: dict[str, Any] = {"funding_id": str(ft.id), "user_id": str(ft.user_id)}
    amount = {"amount": outbox.amount(ft.amount_minor, ft.currency), "currency": ft.currency}
    if ft.purpose == "cash_out":
        kind = f"cashout.{CASH_OUT[status]}"
        data = {
            **base,
            "rail": ft.rail,
            "destination_id": str(ft.bank_account_id) if ft.bank_account_id else None,
            **amount,
            "return_code": ft.return_code if status == "returned" else None,
        }
        if status == "declined":
            data["reason"] = reason
    elif ft.rail == "card" and status == "returned":
        kind = "card.chargeback"
        card = str(ft.card_id) if ft.card_id else None
        data = {**base, "card_id": card, **amount, "reason": reason or CHARGEBACK}
    else:
        kind = f"funding.{status}"
        source = ft.bank_account_id or ft.card_id
        data = {
            **base,
            "rail": ft.rail,
            "purpose": ft.purpose,
            "source_id": str(source) if source else None,
            **amount,
            "return_code": ft.return_code if status == "returned" else None,
        }
        if status == "declined":
            data["reason"] = reason
    return outbox.Event(kind, f"funding/{ft.id}", f"user/{ft.user_id}", datetime.now(UTC), data)


def payout_event(status: str, ft: FundingTransfer, reason: str | None = None) -> outbox.Event:
    """A payout's event: its id is the movement's, `user_id` the merchant's owner."""
    data: dict[str, Any] = {
        "payout_id": str(ft.id),
        "merchant_id": str(ft.merchant_id),
        "user_id": str(ft.user_id),
        "rail": ft.rail,
        "bank_account_id": str(ft.bank_account_id) if ft.bank_account_id else None,
        "amount": outbox.amount(ft.amount_minor, ft.currency),
        "currency": ft.currency,
        "return_code": ft.return_code if status == "returned" else None,
    }
    if status == "declined":
        data["reason"] = reason
    kind = f"payout.{CASH_OUT[status]}"
    return outbox.Event(kind, f"payout/{ft.id}", f"user/{ft.user_id}", datetime.now(UTC), data)


def review_decided(ft: FundingTransfer, *, approved: bool) -> outbox.Event:
    """An operator released or declined the movement the risk checks held for review."""
    return outbox.Event(
        "review.decided",
        f"funding/{ft.id}",
        f"user/{ft.user_id}",
        datetime.now(UTC),
        {
            "funding_id": str(ft.id),
            "user_id": str(ft.user_id),
            "decision": "approved" if approved else "rejected",
            "amount": outbox.amount(ft.amount_minor, ft.currency),
            "currency": ft.currency,
        },
    )


async def tell(
    conn: asyncpg.Connection, status: str, ft: FundingTransfer, reason: str | None = None
) -> None:
    """Write the movement's event in the caller's transaction (the one changing its status)."""
    await outbox.write(conn, [funding_event(status, ft, reason)])
