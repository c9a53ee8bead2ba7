"""Repeated declines stop a user's outgoing money, and the users the engine froze wait for an
operator in the review queue.

Declines are counted in Redis, in an exact sliding window per user (`RiskRules`:
`declines_to_lock` in `declines_window_s`, 5 in 10 minutes by default), not read back from
`risk_assessments`: a declined P2P transfer's assessment is written in a batch a few
milliseconds after its answer (risk.assessments.AssessmentLog), so a count from the table
lags behind a client that sends its next request at once, and each process would miss the
others' unwritten rows. The script adds the decline and counts the window atomically; the call
that reaches the threshold also empties the window, so that of declines at the same moment one
freezes. Redis holds no money: if it is unreachable, or loses the window, a lock is missed and
logged, as the velocity rules are.

A user the engine froze (for repeated declines or for two strong signals) is in the review
queue until an operator decides: approve unfreezes them, reject keeps the freeze. Either is
audited as the operator's own action, which takes the user out of the queue. The queue is
derived from what is stored: users frozen now whose last freeze or unfreeze was the engine's.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from billfold.platform.errors import BillfoldError, NotFound
from billfold.platform.logging import get_logger
from billfold.platform.security import check_four_eyes
from billfold.risk import operators
from billfold.risk.gate import Movement
from billfold.risk.rules import RiskRules

log = get_logger("billfold.risk")

# KEYS[1]: the user's declines; ARGV: now ms, the movement's id, the window ms, the count that
# locks. The count of the window with this decline; at the locking count the window empties.
_DECLINE = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - window))
local count = redis.call('ZCARD', KEYS[1])
if count >= tonumber(ARGV[4]) then
    redis.call('DEL', KEYS[1])
else
    redis.call('PEXPIRE', KEYS[1], window)
end
return count
"""
REVIEW_PAGE = 100
# The user's last 10 assessed movements, newest first, as the review queue shows them.
_RECENT = """
(SELECT coalesce(jsonb_agg(jsonb_build_object(
            'kind', r.kind, 'amount_minor', r.amount_minor,
            'action', r.action, 'at', r.created_at) ORDER BY r.created_at DESC, r.id DESC), '[]')
   FROM (SELECT * FROM risk_assessments WHERE user_id = u.id
          ORDER BY created_at DESC, id DESC LIMIT 10) r)
"""
# The last freeze or unfreeze of the user (the engine's has no operator).
_LAST_STATUS_ACTION = """
SELECT id, operator_id, action, reason, detail, created_at FROM operator_actions
 WHERE subject = 'user:' || u.id AND action IN ('freeze', 'unfreeze')
 ORDER BY created_at DESC, id DESC LIMIT 1
"""


class NotInReview(BillfoldError):
    code = "review_not_pending"
    status = 409
    title = "The user is not waiting for a review"


class Declines:
    """Each user's declines in the last `window_s` seconds, in Redis."""

    def __init__(self, redis: Redis, prefix: str = "declines") -> None:
        self._script = redis.register_script(_DECLINE)
        self._prefix = prefix

    async def add(
        self, user_id: str, movement_id: str, now_ms: int, window_s: float, to_lock: int
    ) -> int:
        """Adds a decline (a movement counts once, whatever its retries); the count of the
        window with it. At `to_lock` or more the window is emptied, so a later call counts
        from 1 again."""
        count = await self._script(
            keys=[f"{self._prefix}:{user_id}"],
            args=[now_ms, movement_id, round(window_s * 1000), to_lock],
        )
        return int(count)


async def count_decline(
    pool: asyncpg.Pool, declines: Declines, rules: RiskRules, movement: Movement, at: datetime
) -> None:
    """Counts the engine's decline of `movement` in its user's window; at `declines_to_lock`
    within `declines_window_s`, freezes the user, audited as the engine's action with the
    count and the window. Without Redis no decline is counted (logged), as no velocity is."""
    try:
        count = await declines.add(
            movement.user_id,
            movement.ref or f"{movement.user_id}:{time.time_ns()}",
            int(at.timestamp() * 1000),
            rules.declines_window_s,
            rules.declines_to_lock,
        )
    except RedisError as error:
        log.warning("decline not counted", user_id=movement.user_id, error=str(error))
        return
    if count >= rules.declines_to_lock:
        await operators.do_user_action(
            pool,
            None,
            "freeze",
            movement.user_id,
            lock_reason(count, rules.declines_window_s),
            {"declines": count, "window_s": rules.declines_window_s},
        )


def lock_reason(count: int, window_s: float) -> str:
    """The freeze's reason in the audit trail: "risk engine: 5 declines in 10 minutes"."""
    if window_s % 60 == 0:
        minutes = int(window_s // 60)
        window = f"{minutes} minute" + ("s" if minutes != 1 else "")
    else:
        window = f"{window_s:g} seconds"
    return f"risk engine: {count} declines in {window}"


async def review_queue(pool: asyncpg.Pool, limit: int = REVIEW_PAGE) -> list[dict[str, Any]]:
    """Users the risk engine froze and no operator has decided on, oldest freeze first, as
    review queue entries (review_id `user:<id>`)."""
    rows = await pool.fetch(
        f"""SELECT u.id, f.reason, f.created_at, {_RECENT} AS recent
              FROM users u CROSS JOIN LATERAL ({_LAST_STATUS_ACTION}) f
             WHERE u.status = 'frozen' AND f.action = 'freeze' AND f.operator_id IS NULL
             ORDER BY f.created_at
             LIMIT $1""",
        limit,
    )
    return [
        {
            "review_id": f"user:{r['id']}",
            "type": "frozen_user",
            "sender_id": str(r["id"]),
            "recipient_id": None,
            "amount_minor": None,
            "score": None,
            "reasons": [r["reason"]],
            "created_at": r["created_at"].isoformat(),
            "recent_activity": r["recent"],
        }
        for r in rows
    ]


def is_user_review(review_id: str) -> bool:
    return review_id.startswith("user:")


def check_frozen_user_decision(operator_id: uuid.UUID, review_id: str) -> uuid.UUID:
    """The user a review of a frozen user is about: 404 unless `user:<a user id>`, 403
    (FourEyes) when it is the operator."""
    try:
        user_id = uuid.UUID(review_id.removeprefix("user:"))
    except ValueError:
        raise NotFound(
            f"review '{review_id[:60]}' does not exist", review_id=review_id[:60]
        ) from None
    check_four_eyes(operator_id, [user_id], f"review {review_id}")
    return user_id


async def do_decide_frozen_user(
    pool: asyncpg.Pool, operator_id: uuid.UUID, review_id: str, *, approve: bool, reason: str
) -> str:
    """An operator's decision on a user the engine froze: approve unfreezes, reject keeps the
    freeze; audited as the operator's unfreeze or freeze, in the transaction that checks, under
    the user's row lock, that the user still waits for it (NotInReview: 409). The user's
    status after it: ACTIVE or FROZEN."""
    user_id = check_frozen_user_decision(operator_id, review_id)
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.fetchval("SELECT status FROM users WHERE id = $1 FOR UPDATE", user_id)
        if status is None:
            raise NotFound(f"review '{review_id[:60]}' does not exist", review_id=review_id[:60])
        last = await conn.fetchrow(_LAST_STATUS_ACTION.replace("u.id", "$1::uuid::text"), user_id)
        waiting = status == "frozen" and last is not None and last["operator_id"] is None
        if not waiting or last["action"] != "freeze":
            raise NotInReview(f"user {user_id} is not waiting for a review", review_id=review_id)
        after = "active" if approve else "frozen"
        if approve:
            await conn.execute("UPDATE users SET status = 'active' WHERE id = $1", user_id)
        await operators.audit(
            conn,
            operator_id,
            "unfreeze" if approve else "freeze",
            f"user:{user_id}",
            reason,
            {"before": "frozen", "after": after, "review": "approve" if approve else "reject"},
        )
    return after.upper()
