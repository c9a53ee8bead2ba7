"""Merchant payments the risk engine held, resolved as held P2P transfers are (wallet.held):
the payer's PIN (`POST /transfers/{transfer_id}/verify`, the hold's id) or an operator's review.
The wallet cannot import merchants, so merchants registers how its holds resolve
(wallet.held.HeldKind, by the hold's transfer code): the post's and void's codes, and the side
rows the ledger writes with them (merchants.records.RESOLVE: the payment's status, its session
paid or released; and the events telling of it, instead of the wallet's `transfer.*`).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from billfold.events import outbox
from billfold.ledger.model import SideRow
from billfold.merchants import checkout, records
from billfold.merchants.events import (
    DECLINED_BY_REVIEW,
    completed_event,
    held_event,
    payment_event,
    session_event,
)
from billfold.merchants.payments import PAYMENT_CODE
from billfold.merchants.views import PAYMENT_SELECT, facts_of
from billfold.risk import held as risk_held
from billfold.wallet.held import HeldKind, register_held_kind

DECLINED_CODE = "merchant_payment_declined"
_SEND_TO_REVIEW = """
UPDATE merchant_payments SET status = 'PENDING_REVIEW'
 WHERE transfer_id = $1 AND status = 'PENDING_VERIFICATION'
"""


async def _payment_of(conn: asyncpg.Connection, held: risk_held.Held) -> asyncpg.Record:
    row = await conn.fetchrow(PAYMENT_SELECT + " WHERE p.transfer_id = $1", held.hold_id)
    if row is None:  # the payment is written with its hold
        raise LookupError(f"hold {held.hold_id} is no merchant payment's")
    return row


async def resolved_rows(
    conn: asyncpg.Connection, held: risk_held.Held, status: str, reason: str | None
) -> Sequence[SideRow]:
    """What the ledger writes with the held payment's post (COMPLETED: the payment completed,
    its session paid, `payment.completed`, `checkout.session.paid`) or void (DECLINED: the
    payment declined, its session's claim given up, `payment.declined` with `reason`)."""
    row = await _payment_of(conn, held)
    facts = facts_of(row)
    rows = [records.resolved(row["id"], status)]
    if status != "COMPLETED":
        declined = payment_event(
            "payment.declined", facts, status, reason=reason or DECLINED_BY_REVIEW
        )
        return [*rows, outbox.with_command(declined)]
    rows.append(outbox.with_command(completed_event(facts)))
    if row["session_id"] is not None:
        session = await checkout.get_session(conn, row["session_id"])
        told = session.facts(row["merchant_name"], row["owner_id"])
        paid = session_event("checkout.session.paid", told, "paid", row["id"])
        rows.append(outbox.with_command(paid))
    return rows


async def sent_to_review(conn: asyncpg.Connection, held: risk_held.Held) -> None:
    """A changed PIN answered the step-up: the payment waits for review now, told as
    `payment.held` again. The caller holds the held transfer's row lock."""
    await conn.execute(_SEND_TO_REVIEW, held.hold_id)
    row = await _payment_of(conn, held)
    await outbox.write(conn, [held_event(facts_of(row), held.hold_id, "PENDING_REVIEW")])


HELD_PAYMENTS = HeldKind(PAYMENT_CODE, DECLINED_CODE, resolved_rows, sent_to_review)


def register() -> None:
    """Have wallet.held resolve merchant payments' holds (in the app's process: create_app)."""
    register_held_kind(PAYMENT_CODE, HELD_PAYMENTS)
