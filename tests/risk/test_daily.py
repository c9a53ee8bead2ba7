"""The risk engine's days for the console's charts: each of the last days (UTC), empty ones
too, with its movements, the money not declined (at once or later) and the engine's declines."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from billfold.config import Settings
from billfold.platform.db import create_pool
from billfold.platform.migrate import apply_migrations
from billfold.risk.daily import Day, daily_decisions
from billfold.wallet.users import check_sign_up, do_create_user


@pytest.fixture
async def scratch_pool(
    database_factory: Callable[[], Awaitable[str]], settings: Settings
) -> AsyncIterator[asyncpg.Pool]:
    """A database of its own: the test counts every assessment in it."""
    scratch = await create_pool(await database_factory(), settings)
    async with scratch.acquire() as conn:
        await apply_migrations(conn)
    yield scratch
    await scratch.close()


async def test_each_day_counts_its_movements_volume_and_declines(
    scratch_pool: asyncpg.Pool,
) -> None:
    user = await do_create_user(
        scratch_pool, check_sign_up("daily_one", "daily@example.com", "+14155550123", "pw-long-1")
    )
    today = date(2026, 12, 6)
    noon = datetime(2026, 12, 6, 12, tzinfo=UTC)
    rows = [
        (noon, 1_000, "allow", False),
        (noon, 2_000, "review", False),  # held, still waiting: counted
        (noon, 4_000, "review", True),  # rejected by a review: not money that moved
        (noon, 8_000, "decline", False),
        (noon - timedelta(days=2), 500, "allow", False),
        (noon - timedelta(days=30), 700, "allow", False),  # before the window
    ]
    for at, amount, action, declined_later in rows:
        await scratch_pool.execute(
            """INSERT INTO risk_assessments (user_id, kind, ref, amount_minor, score, action,
                   reasons, created_at, declined_later)
               VALUES ($1, 'p2p', 'r', $2, 0, $3, '{}', $4, $5)""",
            user.id,
            amount,
            action,
            at,
            declined_later,
        )

    days = await daily_decisions(scratch_pool, 30, today)

    assert len(days) == 30 and days[0].day == today - timedelta(days=29)
    assert days[-1] == Day(today, 4, 3_000, 1)
    assert days[-1].decline_rate == 0.25
    assert days[-3] == Day(today - timedelta(days=2), 1, 500, 0)
    assert days[-2].decline_rate is None
    assert sum(d.movements for d in days) == 5
