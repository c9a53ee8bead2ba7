"""The review queue operators work, every kind in one: transfers and merchant payments the risk
engine held (risk.held, decided by wallet.held), add-funds, cash-outs and payouts it held
(funding.risk_holds), and users it froze (risk.lockout, decided by wallet.standing). The admin
API and the operator console both read and decide through here. No operator decides on their
own money or account (four eyes: each decision's own check)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from billfold.funding import risk_holds
from billfold.funding.cards import CardProcessor
from billfold.funding.service import Funding
from billfold.risk import held, lockout, operators
from billfold.wallet import held as held_transfers
from billfold.wallet import standing, users


async def review_queue(
    funding: Funding, limit: int = risk_holds.REVIEW_PAGE
) -> list[dict[str, Any]]:
    """Everything waiting for an operator, oldest first (at most `limit`), with the score, the
    reasons and the user's recent assessed activity."""
    pool = funding.pool
    waiting = await held.review_queue(pool, limit)
    waiting += await lockout.review_queue(pool, limit)
    held_movements = await risk_holds.review_queue(pool, limit)
    keys = [(m["assessment_id"], m.pop("assessment_at")) for m in held_movements]
    about = await held.assessments(pool, keys)
    waiting += [{**m, **about[m["assessment_id"]]} for m in held_movements]
    waiting.sort(key=lambda row: datetime.fromisoformat(row["created_at"]))
    waiting = waiting[:limit]
    names = await users.usernames(
        pool, [row[k] for row in waiting for k in ("sender_id", "recipient_id") if row.get(k)]
    )
    for row in waiting:
        row["sender_name"] = names.get(row.get("sender_id") or "")
        row["recipient_name"] = names.get(row.get("recipient_id") or "")
    return waiting


async def decide_review(
    funding: Funding,
    processor: CardProcessor,
    operator_id: uuid.UUID,
    review_id: str,
    *,
    approve: bool,
    reason: str,
) -> str:
    """Approve or reject what `review_id` names, with the reason (audited): a held transfer's
    money released or given back, a held movement released to its rail or declined, a frozen
    user unfrozen or kept frozen. Its status after."""
    why = operators.check_reason(reason)
    if lockout.is_user_review(review_id):
        return await standing.do_decide_frozen_user(
            funding.pool, operator_id, review_id, approve=approve, reason=why
        )
    if risk_holds.is_movement_id(review_id):
        return await risk_holds.decide_movement(
            funding, processor, operator_id, review_id, approve=approve, reason=why
        )
    return await held_transfers.decide_held_transfer(
        funding.pool, funding.ledger, operator_id, review_id, approve=approve, reason=why
    )
