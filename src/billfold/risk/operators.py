"""What operators (users with the admin role) do to users, each action audited with its reason.

An action and its audit record are written in one transaction: there is no effect without its
record, and no record of an effect that did not happen. No operator decides on their own account
or money (four eyes: platform.security.check_four_eyes), here or in a review.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from billfold.platform.errors import NotFound, ValidationFailed
from billfold.platform.security import check_four_eyes

MAX_REASON = 500
# action -> the users column it sets and its value
USER_ACTIONS = {
    "freeze": ("status", "frozen"),
    "unfreeze": ("status", "active"),
    "flag": ("flagged", True),
    "unflag": ("flagged", False),
}
AUDIT_COLUMNS = "id, operator_id, action, subject, reason, detail, created_at"


@dataclass(frozen=True)
class ActionDone:
    audit_id: int
    changed: bool  # False when the user was in that state already (still audited)


def check_reason(reason: str) -> str:
    text = " ".join(reason.split())
    if not 1 <= len(text) <= MAX_REASON:
        raise ValidationFailed(f"reason must be 1 to {MAX_REASON} characters", field="reason")
    return text


def check_user_action(
    operator_id: uuid.UUID | None, subject: str, reason: str
) -> tuple[uuid.UUID, str]:
    """The user an action is on and its reason, tidied; 422 for a bad reason, 404 for a subject
    that is not a user id, 403 (FourEyes) when it is the operator's own account."""
    why = check_reason(reason)
    user_id = _user_id(subject)
    check_four_eyes(operator_id, [user_id], f"user {user_id}")
    return user_id, why


async def do_user_action(
    pool: asyncpg.Pool,
    operator_id: uuid.UUID | None,
    action: str,
    subject: str,
    reason: str,
    detail: dict[str, Any] | None = None,
) -> ActionDone:
    """Freeze, unfreeze, flag or unflag a user (a freeze reaches the ledger in the same
    transaction, through users.status), and audit it, with `detail` beside the change. No
    operator: the risk engine acted. Never on the operator's own account (check_user_action)."""
    column, value = USER_ACTIONS[action]
    user_id, why = check_user_action(operator_id, subject, reason)
    async with pool.acquire() as conn, conn.transaction():
        before = await conn.fetchrow(
            f"SELECT {column} AS value FROM users WHERE id = $1 FOR UPDATE", user_id
        )
        if before is None:
            raise NotFound(f"user '{subject[:40]}' does not exist", user_id=subject[:40])
        if before["value"] != value:
            await conn.execute(f"UPDATE users SET {column} = $2 WHERE id = $1", user_id, value)
        audit_id = await audit(
            conn,
            operator_id,
            action,
            f"user:{user_id}",
            why,
            {**(detail or {}), "before": before["value"], "after": value},
        )
    return ActionDone(audit_id, before["value"] != value)


async def audit(
    conn: asyncpg.Connection,
    operator_id: uuid.UUID | None,
    action: str,
    subject: str,
    reason: str,
    detail: dict[str, Any],
) -> int:
    """Record an action, in the caller's transaction (so, with its effect or not at all)."""
    audit_id: int = await conn.fetchval(
        """INSERT INTO operator_actions (operator_id, action, subject, reason, detail)
           VALUES ($1, $2, $3, $4, $5) RETURNING id""",
        operator_id,
        action,
        subject,
        reason,
        detail,
    )
    return audit_id


async def audit_trail(pool: asyncpg.Pool, subject: str, limit: int = 100) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        f"SELECT {AUDIT_COLUMNS} FROM operator_actions WHERE subject = $1"
        " ORDER BY id DESC LIMIT $2",
        f"user:{_user_id(subject)}",
        limit,
    )
    return [
        {
            "audit_id": r["id"],
            "operator_id": str(r["operator_id"]) if r["operator_id"] else "risk-engine",
            "action": r["action"],
            "reason": r["reason"],
            "detail": r["detail"],
            "created_at": r["created_at"].isoformat(),
        }
        for r in rows
    ]


def _user_id(subject: str) -> uuid.UUID:
    try:
        return uuid.UUID(subject)
    except ValueError:
        raise NotFound(f"user '{subject[:40]}' does not exist", user_id=subject[:40]) from None
