"""Transfers the risk engine held, as risk keeps them: what each waits for (the sender's PIN for
a step-up, an analyst for a review), its wrong PINs, and the queues operators read.

The money of a held transfer is reserved by a ledger hold, which the wallet posts or voids
(wallet.held) before it records the outcome here, under the row lock `lock_held` takes: the
ledger posts or voids a hold exactly once, so two analysts deciding at once, or an analyst and
an expiring step-up, give one outcome.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from billfold.events import outbox
from billfold.platform.errors import BillfoldError, NotFound
from billfold.platform.security import check_four_eyes
from billfold.platform.strict import ascii_digits
from billfold.risk.events import WAITING_FOR, transfer_event
from billfold.risk.places import remember_places

MAX_PIN_FAILURES = 3
PENDING = {"step_up": "PENDING_VERIFICATION", "review": "PENDING_REVIEW"}
# Added to the reasons of a step-up that a recently changed PIN answered (wallet.pins).
PIN_CHANGED_REASON = "PIN changed within 24 hours answered the step-up"
# The user's last 10 assessed movements, newest first, for the analyst ($user: their id).
_RECENT = """
(SELECT coalesce(jsonb_agg(jsonb_build_object(
            'kind', r.kind, 'amount_minor', r.amount_minor,
            'action', r.action, 'at', r.created_at) ORDER BY r.id DESC), '[]')
   FROM (SELECT * FROM risk_assessments WHERE user_id = $user
          ORDER BY id DESC LIMIT 10) r)
"""


class NotPending(BillfoldError):
    code = "transfer_not_pending"
    status = 409
    title = "The transfer is not waiting for this"


# A month of assessments is detached (platform.partitions) only once no held transfer still
# under review or waiting for a PIN refers to one of them: the review queues read those. A
# settled one keeps its row, without its assessment. See funding.risk_holds for movements'.
DETACH_GUARD = """(id, created_at) IN
    (SELECT assessment_id, assessment_at FROM held_transfers
      WHERE status IN ('PENDING_VERIFICATION', 'PENDING_REVIEW'))"""


@dataclass(frozen=True)
class Held:
    hold_id: int
    sender_id: uuid.UUID
    recipient_id: uuid.UUID
    amount_minor: int
    status: str
    pin_failures: int
    device_id: str | None
    country: str | None
    assessment_id: int  # the assessment that held it


async def record_hold(
    pool: asyncpg.Pool,
    hold_id: int,
    amount_minor: int,
    *,
    sender_id: uuid.UUID,
    recipient_id: uuid.UUID,
    action: str,
    assessment_id: int,
    device_id: str | None,
    country: str | None,
    told: outbox.Event | None = None,
) -> bool:
    """Note a hold the engine asked for, told as `transfer.held` in the same transaction (or as
    `told` says instead: a merchant payment's own event); False if it was noted already (a
    replayed hold is noted, and told, once, with the assessment it was first made under). The
    recipient of a merchant payment is the merchant's owner."""
    async with pool.acquire() as conn, conn.transaction():
        noted = await conn.fetchval(
            """INSERT INTO held_transfers (hold_id, sender_id, recipient_id, amount_minor,
                   status, assessment_id, device_id, country)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (hold_id) DO NOTHING
               RETURNING true""",
            hold_id,
            sender_id,
            recipient_id,
            amount_minor,
            PENDING[action],
            assessment_id,
            device_id,
            country,
        )
        if noted is not None:
            held = told or transfer_event(
                "transfer.held",
                hold_id,
                sender_id,
                recipient_id,
                amount_minor,
                waiting_for=WAITING_FOR[action],
            )
            await outbox.write(conn, [held])
    return noted is not None


async def status_of(pool: asyncpg.Pool, hold_id: int) -> str | None:
    status: str | None = await pool.fetchval(
        "SELECT status FROM held_transfers WHERE hold_id = $1", hold_id
    )
    return status


async def do_record_outcome(conn: asyncpg.Connection, held: Held, status: str) -> None:
    """A held transfer's hold was posted (COMPLETED) or voided (DECLINED). The caller holds its
    row lock (lock_held)."""
    await conn.execute(
        "UPDATE held_transfers SET status = $2, resolved_at = now() WHERE hold_id = $1",
        held.hold_id,
        status,
    )


async def do_send_to_review(conn: asyncpg.Connection, held: Held, *, tell: bool = True) -> str:
    """A transfer waiting for verification goes to review instead (its PIN changed within 24
    hours answered the step-up), its money still held: told as `transfer.held` again, now
    waiting for review (unless `tell` is false: a movement that tells of itself). The caller
    holds its row lock."""
    await conn.execute(
        "UPDATE held_transfers SET status = 'PENDING_REVIEW' WHERE hold_id = $1", held.hold_id
    )
    await note_reason(conn, held.assessment_id, PIN_CHANGED_REASON)
    if tell:
        await outbox.write(conn, [event_of(held, "transfer.held", waiting_for="review")])
    return "PENDING_REVIEW"


def event_of(held: Held, kind: str, **extra: Any) -> outbox.Event:
    """`kind` (risk.events.transfer_event) of the held transfer."""
    return transfer_event(
        kind, held.hold_id, held.sender_id, held.recipient_id, held.amount_minor, **extra
    )


async def do_note_wrong_pin(conn: asyncpg.Connection, held: Held) -> bool:
    """Count a wrong PIN; whether it was the MAX_PIN_FAILURES-th, which declines the transfer.
    The caller holds its row lock."""
    await conn.execute(
        "UPDATE held_transfers SET pin_failures = $2 WHERE hold_id = $1",
        held.hold_id,
        held.pin_failures + 1,
    )
    return held.pin_failures + 1 >= MAX_PIN_FAILURES


async def note_reason(conn: asyncpg.Connection, assessment_id: int, reason: str) -> None:
    """Adds `reason` to an assessment's reasons: what the review queue shows an analyst."""
    await conn.execute(
        "UPDATE risk_assessments SET reasons = array_append(reasons, $2) WHERE id = $1",
        assessment_id,
        reason,
    )


async def lock_held(
    conn: asyncpg.Connection,
    transfer_id: str,
    *,
    status: str,
    sender_id: uuid.UUID | None,
    operator_id: uuid.UUID | None = None,
) -> Held:
    """The held transfer, locked; 404 unless it exists (and is the sender's, when given); 403
    (FourEyes) when an operator would decide on one of their own (check_operator_decision);
    409 unless it waits for `status`."""
    missing = NotFound(
        f"transfer '{transfer_id[:40]}' does not exist", transfer_id=transfer_id[:40]
    )
    if not ascii_digits(transfer_id, 18):
        raise missing
    row = await conn.fetchrow(
        """SELECT hold_id, sender_id, recipient_id, amount_minor, status, pin_failures,
                  device_id, country, assessment_id
             FROM held_transfers WHERE hold_id = $1 FOR UPDATE""",
        int(transfer_id),
    )
    if row is None or (sender_id is not None and row["sender_id"] != sender_id):
        raise missing
    held = Held(**dict(row))
    if operator_id is not None:
        check_operator_decision(held, operator_id)
    if held.status != status:
        raise NotPending(
            f"transfer {transfer_id} is {held.status}, not {status}", transfer_status=held.status
        )
    return held


def check_operator_decision(held: Held, operator_id: uuid.UUID) -> None:
    """403 (FourEyes) when the operator sends or receives the held transfer."""
    check_four_eyes(operator_id, [held.sender_id, held.recipient_id], f"transfer {held.hold_id}")


async def review_queue(pool: asyncpg.Pool, limit: int = 100) -> list[dict[str, Any]]:
    """Held for review, oldest first, with the score, the reasons and the sender's recent
    assessed activity."""
    rows = await pool.fetch(
        f"""SELECT h.hold_id, h.sender_id, h.recipient_id, h.amount_minor, h.created_at,
                  a.kind, a.score, a.reasons, {_RECENT.replace("$user", "h.sender_id")} AS recent
             FROM held_transfers h
             JOIN risk_assessments a
               ON a.id = h.assessment_id AND a.created_at = h.assessment_at
            WHERE h.status = 'PENDING_REVIEW'
            ORDER BY h.created_at
            LIMIT $1""",
        limit,
    )
    return [
        {
            "review_id": str(r["hold_id"]),
            "type": r["kind"],  # p2p or merchant_payment: what was assessed
            "sender_id": str(r["sender_id"]),
            "recipient_id": str(r["recipient_id"]),
            "amount_minor": r["amount_minor"],
            "score": r["score"],
            "reasons": list(r["reasons"]),
            "created_at": r["created_at"].isoformat(),
            "recent_activity": r["recent"],
        }
        for r in rows
    ]


async def assessments(
    pool: asyncpg.Pool, keys: list[tuple[int, datetime]]
) -> dict[int, dict[str, Any]]:
    """Score, reasons and the user's recent assessed activity of these assessments (by their
    key, id and time: each read in its month), by id: what the review queue shows of a movement
    held in another context (an add-funds, a cash-out)."""
    rows = await pool.fetch(
        f"""SELECT a.id, a.score, a.reasons, {_RECENT.replace("$user", "a.user_id")} AS recent
             FROM unnest($1::bigint[], $2::timestamptz[]) AS k(id, at)
             JOIN risk_assessments a ON a.id = k.id AND a.created_at = k.at""",
        [key[0] for key in keys],
        [key[1] for key in keys],
    )
    return {
        r["id"]: {
            "score": r["score"],
            "reasons": list(r["reasons"]),
            "recent_activity": r["recent"],
        }
        for r in rows
    }


async def remember_assessed(pool: asyncpg.Pool, assessment_id: int) -> None:
    """The device and country of a held movement that its user confirmed become known, as those
    of an allowed one do."""
    row = await pool.fetchrow(
        "SELECT user_id, device_id, country FROM risk_assessments WHERE id = $1", assessment_id
    )
    if row is not None:
        await remember_places(pool, str(row["user_id"]), row["device_id"], row["country"], None)


async def aml_candidates(pool: asyncpg.Pool, limit: int = 200) -> list[dict[str, Any]]:
    """Movements that are report candidates (CTR: cash-equivalent money over $10,000 in a day;
    SAR: suspicious, $2,000 or more), newest first."""
    rows = await pool.fetch(
        """SELECT id, user_id, kind, counterparty_id, amount_minor, action, reasons, aml,
                  created_at
             FROM risk_assessments WHERE aml <> '{}'
            ORDER BY created_at DESC LIMIT $1""",
        limit,
    )
    return [
        {
            "assessment_id": r["id"],
            "user_id": str(r["user_id"]),
            "kind": r["kind"],
            "counterparty_id": str(r["counterparty_id"]) if r["counterparty_id"] else None,
            "amount_minor": r["amount_minor"],
            "verdict": r["action"],
            "reasons": list(r["reasons"]),
            "reports": list(r["aml"]),
            "created_at": r["created_at"].isoformat(),
        }
        for r in rows
    ]
