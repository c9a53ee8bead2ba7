"""Velocity counters against a real Redis: exact windows, one count per movement, fan-in."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from billfold.risk.gate import KeyInFlight
from billfold.risk.velocity import DAY_MS, HOUR_MS, MINUTE_MS, Observation, Velocity

T0 = 1_800_000_000_000  # a fixed moment, ms


def velocity(redis: Redis) -> Velocity:
    return Velocity(redis, prefix=f"vel-test-{uuid.uuid4().hex[:8]}")


async def test_sender_windows_slide_exactly(redis: Redis) -> None:
    """Movements a minute and an hour apart leave the 1-minute and 1-hour windows exactly when
    they are older than them."""
    v = velocity(redis)
    for n, at in enumerate([T0, T0 + 30_000, T0 + MINUTE_MS + 1, T0 + HOUR_MS + 2]):
        last = await v.observe(Observation(f"e{n}", "alice", 100 * (n + 1), at))
    assert (last.sender_count_1m, last.sender_count_1h) == (1, 3)
    later = await v.observe(Observation("e9", "alice", 5, T0 + HOUR_MS + MINUTE_MS + 3))
    assert (later.sender_count_1m, later.sender_count_1h) == (1, 2)


async def test_a_retried_movement_counts_once(redis: Redis) -> None:
    """The same event id recorded twice adds once to every window."""
    v = velocity(redis)
    await v.observe(Observation("same", "bob", 700, T0, recipient_id="r1"))
    again = await v.observe(Observation("same", "bob", 700, T0, recipient_id="r1"))
    assert (again.sender_count_1m, again.sender_count_1h, again.recipient_senders_24h) == (1, 1, 1)


async def test_a_claimed_key_is_neither_counted_nor_claimed_again(redis: Redis) -> None:
    """The claim is set in the same call; a second movement claiming the key while it is held
    raises and counts nothing, and once the claim expires the key can be claimed again."""
    v = velocity(redis)
    claim = f"claim-test-{uuid.uuid4().hex}"
    first = Observation("k1", "carol", 100, T0, claim=claim, claim_ttl_ms=300)
    assert (await v.observe(first)).sender_count_1h == 1
    assert await redis.pttl(claim) > 0
    with pytest.raises(KeyInFlight):
        await v.observe(Observation("k2", "carol", 100, T0 + 1, claim=claim, claim_ttl_ms=300))
    unclaimed = await v.observe(Observation("k3", "carol", 100, T0 + 2))
    assert unclaimed.sender_count_1h == 2  # k1 and k3: k2 was not counted
    await asyncio.sleep(0.4)
    later = Observation("k4", "carol", 100, T0 + 3, claim=claim, claim_ttl_ms=300)
    assert (await v.observe(later)).sender_count_1h == 3


async def test_fan_in_counts_distinct_and_new_senders(redis: Redis) -> None:
    """A recipient paid by twelve senders, eight of them new, three twice: 12 distinct, 8 new."""
    v = velocity(redis)
    last = None
    for n in range(15):
        sender = f"s{n % 12}"
        last = await v.observe(
            Observation(
                f"f{n}", sender, 1000, T0 + n, recipient_id="mule", sender_is_new=n % 12 < 8
            )
        )
    assert last is not None
    assert (last.recipient_senders_24h, last.recipient_new_senders_24h) == (12, 8)
    day_later = await v.observe(
        Observation("g", "s0", 1, T0 + DAY_MS + 20, recipient_id="mule", sender_is_new=True)
    )
    assert (day_later.recipient_senders_24h, day_later.recipient_new_senders_24h) == (1, 1)


async def test_concurrent_movements_are_all_counted(redis: Redis) -> None:
    """Fifty movements of one sender at once: the last to finish sees all fifty."""
    v = velocity(redis)
    seen = await asyncio.gather(
        *(v.observe(Observation(f"c{n}", "carol", 1, T0 + n)) for n in range(50))
    )
    assert max(c.sender_count_1m for c in seen) == 50
    assert sorted(c.sender_count_1m for c in seen) == list(range(1, 51))
