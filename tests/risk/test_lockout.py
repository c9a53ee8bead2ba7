"""The declines window in Redis: exact in time, one count per movement, and one lock among
declines at the same moment."""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from billfold.risk.lockout import Declines, lock_reason

T0 = 1_800_000_000_000  # a fixed moment, ms
WINDOW_S = 600.0


def declines(redis: Redis) -> Declines:
    return Declines(redis, prefix=f"declines-test-{uuid.uuid4().hex[:8]}")


async def test_the_window_keeps_declines_up_to_its_age_and_forgets_older_ones(
    redis: Redis,
) -> None:
    """Declines 10 minutes old still count; older ones do not; a retry counts once."""
    d = declines(redis)
    for n in range(3):
        await d.add("ana", f"m{n}", T0, WINDOW_S, 5)
    assert await d.add("ana", "m2", T0, WINDOW_S, 5) == 3
    assert await d.add("ana", "m3", T0 + 600_000, WINDOW_S, 5) == 4
    assert await d.add("ana", "m4", T0 + 600_001, WINDOW_S, 5) == 2


async def test_the_decline_that_reaches_the_count_empties_the_window(redis: Redis) -> None:
    """Of ten declines at once with a count of 5, exactly two reach it (the 5th and the
    10th): each lock starts the count again."""
    d = declines(redis)
    counts = await asyncio.gather(*(d.add("ben", f"m{n}", T0, WINDOW_S, 5) for n in range(10)))
    assert sorted(counts) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_the_reason_names_the_count_and_the_window() -> None:
    assert lock_reason(5, 600) == "risk engine: 5 declines in 10 minutes"
    assert lock_reason(3, 60) == "risk engine: 3 declines in 1 minute"
    assert lock_reason(4, 90) == "risk engine: 4 declines in 90 seconds"
