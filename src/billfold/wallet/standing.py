"""A user's standing: whether their money may move out (`users.status`: active or frozen) and
whether the risk engine treats them as a risk to pay (`users.flagged`).

Both are columns of the wallet's users table, and only this module writes them. The ledger
follows the status in the same transaction (migration 0005: a frozen user's wallets refuse
debits). Risk decides, and keeps the record: an operator acts through the admin API, which calls
`do_user_action`; the engine freezes through the function it is built with
(risk.gate.FreezeUser, made here by `engine_freezer`); a review of a user the engine froze is
decided by `do_decide_frozen_user`. Each change is audited in risk's operator_actions
(risk.operators.audit) in the transaction that makes it, under the user's row lock: there is no
change without its record, and two changes of one user are audited in the order they were made.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from billfold.events import outbox
from billfold.platform.errors import NotFound
from billfold.risk import lockout, operators
from billfold.risk.gate import FreezeUser
from billfold.wallet.events import BY_OPERATOR, BY_REVIEW, BY_RISK, standing_changed

# action -> the users column it sets and its value
USER_ACTIONS = {
    "freeze": ("status", "frozen"),
    "unfreeze": ("status", "active"),
    "flag": ("flagged", True),
    "unflag": ("flagged", False),
}


@dataclass(frozen=True)
class ActionDone:
    audit_id: int
    changed: bool  # False when the user was in that state already (still audited)


async def do_user_action(
    pool: asyncpg.Pool,
    operator_id: uuid.UUID | None,
    action: str,
    subject: str,
    reason: str,
    detail: dict[str, Any] | None = None,
) -> ActionDone:
    """Freeze, unfreeze, flag or unflag a user (a freeze reaches the ledger in the same
    transaction, through users.status), and audit it, with `detail` beside the change; a change
    of status is told (`user.frozen`, `user.unfrozen`) in that transaction too. No operator:
    the risk engine acted. Never on the operator's own account
    (risk.operators.check_user_action).

    Locks: the user's row, for the transaction that reads, changes and audits it."""
    column, value = USER_ACTIONS[action]
    user_id, why = operators.check_user_action(operator_id, subject, reason)
    async with pool.acquire() as conn, conn.transaction():
        before = await conn.fetchrow(
            f"SELECT {column} AS value FROM users WHERE id = $1 FOR UPDATE", user_id
        )
        if before is None:
            raise NotFound(f"user '{subject[:40]}' does not exist", user_id=subject[:40])
        if before["value"] != value:
            await conn.execute(f"UPDATE users SET {column} = $2 WHERE id = $1", user_id, value)
            if column == "status":
                why_told = BY_RISK if operator_id is None else BY_OPERATOR
                await outbox.write(conn, [standing_changed(user_id, str(value), why_told)])
        audit_id = await operators.audit(
            conn,
            operator_id,
            action,
            f"user:{user_id}",
            why,
            {**(detail or {}), "before": before["value"], "after": value},
        )
    return ActionDone(audit_id, before["value"] != value)


def engine_freezer(pool: asyncpg.Pool) -> FreezeUser:
    """How the risk engine freezes a user: as its own action (no operator), audited with the
    engine's reason and detail, in a transaction of its own (`do_user_action`)."""

    async def freeze(user_id: str, reason: str, detail: dict[str, Any] | None = None) -> None:
        await do_user_action(pool, None, "freeze", user_id, reason, detail)

    return freeze


async def do_decide_frozen_user(
    pool: asyncpg.Pool, operator_id: uuid.UUID, review_id: str, *, approve: bool, reason: str
) -> str:
    """An operator's decision on a user the engine froze: approve unfreezes (told as
    `user.unfrozen`), reject keeps the freeze (nothing changes, nothing is told); audited as
    the operator's unfreeze or freeze, in the transaction that checks that
    the user still waits for it (risk.lockout.check_waiting: NotInReview, 409). The user's
    status after it: ACTIVE or FROZEN.

    Locks: the user's row, for the transaction that checks, changes and audits it."""
    user_id = lockout.check_frozen_user_decision(operator_id, review_id)
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.fetchval("SELECT status FROM users WHERE id = $1 FOR UPDATE", user_id)
        if status is None:
            raise NotFound(f"review '{review_id[:60]}' does not exist", review_id=review_id[:60])
        await lockout.check_waiting(conn, user_id, status == "frozen", review_id)
        after = "active" if approve else "frozen"
        if approve:
            await conn.execute("UPDATE users SET status = 'active' WHERE id = $1", user_id)
            await outbox.write(conn, [standing_changed(user_id, "active", BY_REVIEW)])
        await operators.audit(
            conn,
            operator_id,
            "unfreeze" if approve else "freeze",
            f"user:{user_id}",
            reason,
            {"before": "frozen", "after": after, "review": "approve" if approve else "reject"},
        )
    return after.upper()


async def read_standing(pool: asyncpg.Pool, user_id: uuid.UUID) -> dict[str, Any]:
    """A user's status (active or frozen) and whether they are flagged; 404 for no user."""
    row = await pool.fetchrow("SELECT status, flagged FROM users WHERE id = $1", user_id)
    if row is None:
        raise NotFound(f"user '{user_id}' does not exist", user_id=str(user_id))
    return dict(row)
