"""Verification tiers, funding limits and the funds availability policy."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg

from billfold.config import DEFAULT_FUNDING_LIMITS, FundingLimits, Settings
from billfold.funding.service import LimitExceeded
from billfold.platform.currency import WALLET_CURRENCY, format_amount

# Rolling windows: a limit can't be doubled by straddling midnight or a month's end.
WINDOWS = {"daily": timedelta(days=1), "monthly": timedelta(days=30)}

_TIER = """
SELECT u.created_at <= now() - make_interval(days => $2) AS old_enough,
       EXISTS (SELECT 1 FROM funding_transfers f WHERE f.user_id = u.id AND f.rail = 'ach'
                  AND f.purpose = 'add_funds' AND f.status = 'settled') AS has_settled,
       EXISTS (SELECT 1 FROM funding_transfers f WHERE f.user_id = u.id
                  AND f.status = 'returned' AND f.purpose <> 'micro_deposit') AS has_returned
  FROM users u WHERE u.id = $1
"""

# Money returned or declined never moved: it uses no limit. Money held by risk does.
_USED = """
SELECT coalesce(sum(amount_minor) FILTER (WHERE created_at > now() - $3::interval), 0)::bigint
           AS daily,
       coalesce(sum(amount_minor) FILTER (WHERE created_at > now() - $4::interval), 0)::bigint
           AS monthly
  FROM funding_transfers
 WHERE user_id = $1 AND purpose = $2 AND status NOT IN ('returned', 'declined')
   AND created_at > now() - $4::interval
"""


async def tier(conn: asyncpg.Connection, settings: Settings, user_id: uuid.UUID) -> str:
    """`established`: old enough, with a settled deposit and never a return; else `basic`."""
    row = await conn.fetchrow(_TIER, user_id, settings.established_after_days)
    if row and row["old_enough"] and row["has_settled"] and not row["has_returned"]:
        return "established"
    return "basic"


def limits_for(settings: Settings, tier_name: str) -> FundingLimits:
    configured = settings.funding_limits
    return configured.get(tier_name) or configured.get("basic") or DEFAULT_FUNDING_LIMITS["basic"]


async def check_limits(
    conn: asyncpg.Connection,
    settings: Settings,
    user_id: uuid.UUID,
    purpose: str,
    amount_minor: int,
) -> str:
    """Refuse an amount that would take the user over a limit of their tier; return the tier.
    The caller holds the user's row lock, so two requests can't both fit under one limit."""
    tier_name = await tier(conn, settings, user_id)
    limits = limits_for(settings, tier_name)
    used = await conn.fetchrow(_USED, user_id, purpose, WINDOWS["daily"], WINDOWS["monthly"])
    assert used is not None
    for window in WINDOWS:
        limit = getattr(limits, f"{purpose}_{window}_minor")
        if used[window] + amount_minor > limit:
            name = f"{purpose}_{window}"
            amount, limit_amount = _dollars(amount_minor), _dollars(limit)
            raise LimitExceeded(
                f"{amount} would take {purpose.replace('_', '-')} over the {tier_name} {window}"
                f" limit of {limit_amount} ({_dollars(used[window])} used)",
                limit=name,
                limit_amount=limit_amount,
                used=_dollars(used[window]),
                tier=tier_name,
            )
    return tier_name


async def instant_minor(
    conn: asyncpg.Connection, settings: Settings, user_id: uuid.UUID, tier_name: str, amount: int
) -> int:
    """How much of an ACH deposit an established user may spend at once: the policy's limit,
    less what earlier unsettled deposits already advanced."""
    if tier_name != "established" or settings.ach_instant_limit_minor <= 0:
        return 0
    outstanding: int = await conn.fetchval(
        """SELECT coalesce(sum(advance_minor), 0)::bigint FROM funding_transfers
            WHERE user_id = $1 AND purpose = 'add_funds' AND status = 'pending'""",
        user_id,
    )
    return max(0, min(amount, settings.ach_instant_limit_minor - outstanding))


def _dollars(amount_minor: int) -> str:
    return format_amount(amount_minor, WALLET_CURRENCY)
