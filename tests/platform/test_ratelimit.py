"""The Redis rate limiter on its own: exact bursts under concurrency, all-or-none, the pace."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from redis.asyncio import Redis

from billfold.platform.ratelimit import Limit, RateLimited, hit


def subject() -> str:
    """A subject of this test's own, so that its keys are its own."""
    return secrets.token_hex(8)


async def test_fifty_hits_at_once_on_a_limit_of_twenty_pass_exactly_twenty(redis: Redis) -> None:
    """Check and count are one atomic step: concurrent requests cannot overshoot the limit."""
    limit = Limit("test", subject(), 20, 60)

    results = await asyncio.gather(*(hit(redis, limit) for _ in range(50)), return_exceptions=True)

    assert sum(result is None for result in results) == 20
    assert all(isinstance(result, RateLimited) for result in results if result is not None)


async def test_a_refused_hit_counts_against_none_of_its_limits(redis: Redis) -> None:
    """A request one limit refuses does not use up another limit it was checked against."""
    per_user, per_address = Limit("test_user", subject(), 1, 60), Limit("test_ip", subject(), 2, 60)
    await hit(redis, per_user, per_address)

    with pytest.raises(RateLimited) as refused:
        await hit(redis, per_user, per_address)
    await hit(redis, per_address)

    assert refused.value.fields["limit"] == "test_user"
    with pytest.raises(RateLimited):
        await hit(redis, per_address)


async def test_after_a_burst_requests_pass_again_at_the_limits_pace(redis: Redis) -> None:
    """Two per second: after a burst of two, the next is due half a second later."""
    limit = Limit("test", subject(), 2, 1)
    await hit(redis, limit)
    await hit(redis, limit)

    with pytest.raises(RateLimited) as refused:
        await hit(redis, limit)
    await asyncio.sleep(0.6)
    await hit(redis, limit)

    assert refused.value.fields["retry_after_s"] == 1
    assert refused.value.headers() == {"Retry-After": "1"}


async def test_a_limit_of_zero_is_off(redis: Redis) -> None:
    limit = Limit("test", subject(), 0, 60)

    for _ in range(5):
        await hit(redis, limit)

    assert await redis.keys(f"{limit.key}*") == []
