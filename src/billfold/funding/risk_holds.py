"""Add-funds, cash-outs and payouts the risk engine held: recorded, not released to their rail,
until the user confirms with their PIN (step-up) or an operator approves (review); three wrong
PINs or a rejection decline them. A payout is held as a cash-out is (its money reserved in its
merchant account), and its owner confirms it.

While held, a cash-out's money is reserved by its ledger hold (as for any cash-out) but it is
neither exported nor settled; an ACH add-funds books nothing and is not exported; a card is not
charged. Every decision is taken under the movement's row lock and only while `risk_status`
still waits for that decision, so two decisions at once give one outcome. Releasing commits the
decision first; what follows (booking an add-funds, charging a card) is idempotent and keyed by
the movement, and the recovery sweep finishes it if the process dies in between. Declining a
cash-out voids its hold under a key named after the movement before the decision commits; a
release finding that void in the ledger (the process died between the two) declines instead.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from billfold.events import outbox
from billfold.funding.cards import CARD_COLUMNS, CardProcessor, card_token
from billfold.funding.events import CARD_DECLINED, WRONG_PIN, review_decided, tell
from billfold.funding.movements import CLIENT, book_add_funds, book_card_funding
from billfold.funding.service import (
    FUNDING_COLUMNS,
    OUTGOING,
    CardDeclined,
    Funding,
    FundingTransfer,
)
from billfold.funding.views import STATUSES, funding_view
from billfold.platform.errors import BillfoldError, NotFound
from billfold.platform.security import check_four_eyes
from billfold.risk import held as risk_held
from billfold.risk import operators
from billfold.wallet.pins import WrongPin, check_pin
from billfold.wallet.refusals import in_wallet_terms
from billfold.wallet.users import User, get_user

MAX_PIN_FAILURES = 3
VERIFICATION = "pending_verification"
REVIEW = "pending_review"
REVIEW_PAGE = 100
# Beside risk.held's: a month of assessments stays while a movement still held (under review
# or waiting for a PIN) refers to one of them.
ASSESSMENTS_DETACH_GUARD = """(id, created_at) IN
    (SELECT assessment_id, assessment_at FROM funding_transfers WHERE risk_status IS NOT NULL)"""


class MovementNotHeld(BillfoldError):
    code = "transfer_not_pending"
    status = 409
    title = "The transfer is not waiting for this"


def is_movement_id(text: str) -> bool:
    """Funding movements have uuids; P2P transfers (ledger ids) are digits."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def access_held_movement(
    conn: asyncpg.Connection,
    funding_id: str,
    *,
    waiting_for: str,
    user_id: uuid.UUID | None,
    operator_id: uuid.UUID | None = None,
) -> FundingTransfer:
    """The movement, locked FOR UPDATE; 404 unless it exists (and is the user's, when given);
    403 (FourEyes) when an operator would decide on their own (check_operator_decision); 409
    unless it waits for `waiting_for`."""
    row = None
    if is_movement_id(funding_id):
        row = await conn.fetchrow(
            f"SELECT {FUNDING_COLUMNS} FROM funding_transfers WHERE id = $1 FOR UPDATE",
            uuid.UUID(funding_id),
        )
    if (
        row is None
        or row["purpose"] == "micro_deposit"
        or (user_id is not None and row["user_id"] != user_id)
    ):
        raise NotFound(f"transfer '{funding_id[:40]}' does not exist", transfer_id=funding_id[:40])
    ft = FundingTransfer.from_row(row)
    if operator_id is not None:
        check_operator_decision(ft, operator_id)
    if ft.risk_status != waiting_for:
        now = STATUSES[ft.risk_status or ft.status]
        raise MovementNotHeld(
            f"transfer {ft.id} is {now}, not {STATUSES[waiting_for]}", transfer_status=now
        )
    return ft


def check_operator_decision(ft: FundingTransfer, operator_id: uuid.UUID) -> None:
    """403 (FourEyes) when the movement is the operator's own."""
    check_four_eyes(operator_id, [ft.user_id], f"transfer {ft.id}")


async def do_note_wrong_pin(conn: asyncpg.Connection, ft: FundingTransfer) -> FundingTransfer:
    """Count a wrong PIN. The caller holds the movement's row lock (access_held_movement)."""
    return await _update(conn, "pin_failures = pin_failures + 1", ft.id)


async def do_release_movement(
    conn: asyncpg.Connection, funding: Funding, ft: FundingTransfer
) -> FundingTransfer:
    """Let a held movement go to its rail. The caller holds its row lock (access_held_movement)
    and calls `finish_release` once this transaction commits."""
    declined = ft.purpose in OUTGOING and await funding.ledger.stored_transfer(
        CLIENT, _decline_key(ft)
    )
    if declined:
        # A decline voided the hold, then its process died before recording it.
        return await do_decline_movement(conn, funding, ft)
    return await _update(conn, "risk_status = NULL, risk_decided_at = now()", ft.id)


async def do_send_to_review(conn: asyncpg.Connection, ft: FundingTransfer) -> FundingTransfer:
    """A movement waiting for verification goes to review instead (its PIN changed within 24
    hours answered the step-up): still held, in the operators' queue. The caller holds its row
    lock (access_held_movement)."""
    return await _update(conn, f"risk_status = '{REVIEW}'", ft.id)


async def do_decline_movement(
    conn: asyncpg.Connection, funding: Funding, ft: FundingTransfer
) -> FundingTransfer:
    """Decline a held movement: a cash-out's money back (its hold voided), an add-funds never
    booked nor charged. The caller holds its row lock (access_held_movement)."""
    if ft.purpose in OUTGOING and ft.hold_id is not None:
        # Nothing else resolves a held cash-out's hold (settling and returns are refused while
        # it is held), and a second decline replays this void.
        code = f"{ft.purpose}_declined"  # cash_out_declined, payout_declined
        await funding.ledger.void(CLIENT, _decline_key(ft), ft.hold_id, code=code)
    return await _update(
        conn, "status = 'declined', risk_status = NULL, risk_decided_at = now()", ft.id
    )


async def verify_movement(
    funding: Funding, processor: CardProcessor, user: User, funding_id: str, pin: str
) -> dict[str, Any]:
    """The right PIN releases a held add-funds or cash-out of the user's to its rail (an
    add-funds is booked, its card charged), or sends it to review if it was changed within 24
    hours; the third wrong one declines it (a cash-out's money back). Its public form after; a
    wrong PIN is WrongPin, naming the status it left the movement in.

    Locks: the movement's row, from the check to the decision (one transaction); what follows
    a release (finish_release) runs after it commits."""
    pool = funding.pool
    async with pool.acquire() as conn, conn.transaction():
        ft = await access_held_movement(conn, funding_id, waiting_for=VERIFICATION, user_id=user.id)
        checked = await check_pin(pool, user.id, pin)
        if checked.right and checked.changed_recently:
            ft = await do_send_to_review(conn, ft)
            assert ft.assessment_id is not None  # a held movement is held on its assessment
            await risk_held.note_reason(conn, ft.assessment_id, risk_held.PIN_CHANGED_REASON)
        elif checked.right:
            ft = await do_release_movement(conn, funding, ft)
        else:
            ft = await do_note_wrong_pin(conn, ft)
            if ft.pin_failures >= MAX_PIN_FAILURES:
                ft = await do_decline_movement(conn, funding, ft)
                await tell(conn, "declined", ft, WRONG_PIN)
    if not checked.right:
        status = funding_view(ft)["status"]
        raise WrongPin(
            f"wrong PIN; the transfer is {status}",
            attempts_left=max(MAX_PIN_FAILURES - ft.pin_failures, 0),
            transfer_status=status,
        )
    if ft.risk_status is not None:  # sent to review
        return funding_view(ft)
    if ft.assessment_id is not None:
        await risk_held.remember_assessed(pool, ft.assessment_id)
    return funding_view(await finish_release(funding, processor, ft))


async def decide_movement(
    funding: Funding,
    processor: CardProcessor,
    operator_id: uuid.UUID,
    review_id: str,
    *,
    approve: bool,
    reason: str,
) -> str:
    """Release or decline an add-funds or cash-out held for review, audited with its outcome
    and told (`review.decided`) in the decision's transaction; its status after. A released
    add-funds is then booked (its card charged: a decline by the processor declines it, a 402
    after the approval is recorded).

    Locks: the movement's row, from the check to the audit record (one transaction); what
    follows a release (finish_release) runs after it commits."""
    async with funding.pool.acquire() as conn, conn.transaction():
        ft = await access_held_movement(
            conn, review_id, waiting_for=REVIEW, user_id=None, operator_id=operator_id
        )
        decide = do_release_movement if approve else do_decline_movement
        ft = await decide(conn, funding, ft)
        # A release that finds the movement declined already (do_release_movement) tells that.
        approved = approve and ft.status != "declined"
        await outbox.write(conn, [review_decided(ft, approved=approved)])
        await operators.audit(
            conn,
            operator_id,
            "approve_review" if approve else "reject_review",
            f"transfer:{ft.id}",
            reason,
            {"type": ft.purpose, "status": "DECLINED" if ft.status == "declined" else "RELEASED"},
        )
    ft = await finish_release(funding, processor, ft)
    return str(funding_view(ft)["status"])


async def finish_release(
    funding: Funding, processor: CardProcessor, ft: FundingTransfer
) -> FundingTransfer:
    """What a released movement does next (idempotent): an ACH add-funds is booked as any
    other; a card is charged (raising CardDeclined, the movement declined, if the processor
    refuses) and the wallet credited. A cash-out waits for the export, as any other."""
    if ft.purpose != "add_funds" or ft.risk_status is not None or ft.status == "declined":
        return ft
    user = await get_user(funding.pool, ft.user_id)
    if ft.rail == "ach":
        with in_wallet_terms(user.account_id, ft.amount_minor, ft.currency):
            return await book_add_funds(funding, user.account_id, ft)
    if ft.status == "pending":
        ft = await _charge_released(funding, processor, ft)
    with in_wallet_terms(user.account_id, ft.amount_minor, ft.currency):
        return await book_card_funding(funding, user, ft)


async def _charge_released(
    funding: Funding, processor: CardProcessor, ft: FundingTransfer
) -> FundingTransfer:
    card = await funding.pool.fetchrow(
        f"SELECT {CARD_COLUMNS} FROM cards WHERE id = $1", ft.card_id
    )
    assert card is not None  # funding_transfers.card_id references cards
    if card["status"] != "active":
        decline_code: str | None = "card_removed"
    else:
        # The key of the request that made the movement: a retry (the user's, or recovery's)
        # is answered by the processor as the first charge was, never charged twice.
        charge = await processor.charge(
            card_token(funding.keys, card),
            ft.amount_minor + ft.fee_minor,
            f"{ft.user_id}:{ft.idempotency_key}",
            ft.user_id,
        )
        decline_code = None if charge.approved else charge.decline_code or "declined"
    outcome = "status = 'settled', settled_at = now()"
    if decline_code is not None:
        outcome = "status = 'declined'"
    # Whoever charges first records the outcome (the processor answers every retry alike), and
    # tells a settled one in the same transaction.
    async with funding.pool.acquire() as conn, conn.transaction():
        changed = await conn.fetchrow(
            f"""UPDATE funding_transfers SET {outcome} WHERE id = $1 AND status = 'pending'
                RETURNING {FUNDING_COLUMNS}""",
            ft.id,
        )
        if changed is not None:
            status = "settled" if changed["status"] == "settled" else "declined"
            reason = None if status == "settled" else CARD_DECLINED
            await tell(conn, status, FundingTransfer.from_row(changed), reason)
    row = await funding.pool.fetchrow(
        f"SELECT {FUNDING_COLUMNS} FROM funding_transfers WHERE id = $1", ft.id
    )
    ft = FundingTransfer.from_row(row)
    if ft.status == "declined":
        raise CardDeclined(
            f"card ending {card['last4']} was declined ({decline_code or 'declined'}); the "
            "add-funds is declined and nothing was charged",
            decline_code=decline_code or "declined",
            card_id=str(ft.card_id),
            transfer_id=str(ft.id),
            transfer_status="DECLINED",
        )
    return ft


async def review_queue(pool: asyncpg.Pool, limit: int = REVIEW_PAGE) -> list[dict[str, Any]]:
    """Movements held for review, oldest first, with the assessment that held them."""
    rows = await pool.fetch(
        """SELECT id, user_id, purpose, rail, amount_minor, assessment_id, assessment_at,
                  created_at
             FROM funding_transfers WHERE risk_status = 'pending_review'
            ORDER BY created_at LIMIT $1""",
        limit,
    )
    return [
        {
            "review_id": str(r["id"]),
            "type": r["purpose"],
            "sender_id": str(r["user_id"]),
            "recipient_id": None,
            "amount_minor": r["amount_minor"],
            "assessment_id": r["assessment_id"],
            "assessment_at": r["assessment_at"],  # with the id, the assessment's key
            "created_at": r["created_at"].isoformat(),
        }
        for r in rows
    ]


def _decline_key(ft: FundingTransfer) -> str:
    return f"{ft.id}:decline"


async def _update(
    conn: asyncpg.Connection, assignments: str, funding_id: uuid.UUID
) -> FundingTransfer:
    row = await conn.fetchrow(
        f"UPDATE funding_transfers SET {assignments} WHERE id = $1 RETURNING {FUNDING_COLUMNS}",
        funding_id,
    )
    assert row is not None  # locked by access_held_movement
    return FundingTransfer.from_row(row)
