"""A consumer stops when cancelled, whenever the cancel comes: on Python 3.11 redis-py's
asyncio.wait_for can drop it as a command's write completes (platform.tasks.cancelling), and
an app's shutdown then waited for the consumer forever."""

from __future__ import annotations

import asyncio

from billfold.config import Settings
from billfold.events.consumer import CloudEvent, Consumer, serve

TRIES = 60
STOP_WITHIN_S = 5.0


async def test_a_consumer_cancelled_at_any_moment_stops(settings: Settings, redis_url: str) -> None:
    """Cancelled 0 to 20 ms after it starts, while it joins its group and takes its first
    batches, each of TRIES consumers stops within STOP_WITHIN_S."""

    async def handle(events: list[CloudEvent]) -> None:
        return None

    stuck = []
    for n in range(TRIES):
        task = asyncio.create_task(serve(Consumer("test-stop", handle), settings, redis_url))
        await asyncio.sleep((n % 21) / 1000)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=STOP_WITHIN_S)
        if not done:
            stuck.append(n)
            task.cancel()
    assert stuck == []
