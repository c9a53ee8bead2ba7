"""The asyncio Redis client."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.connection import HiredisRespSerializer

SOCKET_TIMEOUT_S = 5.0
HEALTH_CHECK_INTERVAL_S = 30

_SERIALIZER = HiredisRespSerializer()


def _pack_command(self: Connection, *args: Any) -> list[bytes]:
    return _SERIALIZER.pack(*args)  # type: ignore[no-any-return]


# redis-py's asyncio connections write commands with a pure-Python packer whose cost grows
# with the square of a command's length up to 6 kB (it joins the buffer anew for each argument):
# 260 µs for a script call of 500 arguments, the velocity counters' batch. Its synchronous
# client packs with hiredis when hiredis is installed; these connections do the same (8x
# faster there, the same bytes: tests/platform/test_redis.py).
PACKED: dict[type[AbstractConnection], type[AbstractConnection]] = {
    cls: type(cls.__name__, (cls,), {"pack_command": _pack_command})
    for cls in (Connection, SSLConnection, UnixDomainSocketConnection)
}


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
    pool = client.connection_pool
    pool.connection_class = PACKED.get(pool.connection_class, pool.connection_class)
    try:
        await client.ping()
    except BaseException:
        await client.aclose()
        raise
    return client
