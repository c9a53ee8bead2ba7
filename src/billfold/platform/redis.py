"""The asyncio Redis client: redis-py's, as it comes."""

from __future__ import annotations

from redis.asyncio import Redis

SOCKET_TIMEOUT_S = 5.0
HEALTH_CHECK_INTERVAL_S = 30


async def create_redis(url: str) -> Redis:
    """A client for `url` (redis://, rediss:// or unix://) that has answered PING.

    Replies are decoded to str. Fails at once, rather than at first use, if Redis is unreachable.
    """
    client = Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
    )
    try:
        await client.ping()
    except BaseException:
        await client.aclose()
        raise
    return client
