"""Signals other contexts raise for the risk engine about a user: an account unlinked for an
unauthorised-debit return or a chargeback, a bank account several users linked (funding).
Kept in `risk_flags`, append-only; this is the one place that writes it."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg


async def raise_flag(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: uuid.UUID, reason: str, detail: dict[str, Any]
) -> None:
    """Record `reason` against the user, with `detail`, in the caller's transaction if `conn`
    is in one."""
    await conn.execute(
        "INSERT INTO risk_flags (user_id, reason, detail) VALUES ($1, $2, $3)",
        user_id,
        reason,
        detail,
    )
