"""The Redis client packs commands with hiredis: the same bytes, the same refusals."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import DataError

from billfold.config import Settings
from billfold.platform.embedded import ensure_redis
from billfold.platform.redis import PACKED, create_redis

COMMANDS: list[tuple[Any, ...]] = [
    ("SET", "key", "value"),
    ("CONFIG GET", "maxmemory"),
    (b"CLIENT SETNAME", "billfold"),
    ("EVALSHA", "ab" * 20, 2, "k1", "k2", 1.5, -3, 0.1, 1e20, 3.14159265358979, "é ü", b"\xff"),
    ("EVALSHA", "sha", 300, *(f"in-flight:{n}" for n in range(300)), *range(200)),
]


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_are_packed_to_the_same_bytes(command: tuple[Any, ...]) -> None:
    plain, packed = Connection(), PACKED[Connection]()
    assert b"".join(packed.pack_command(*command)) == b"".join(plain.pack_command(*command))


@pytest.mark.parametrize("value", [True, None, [1], {"a": 1}])
def test_values_redis_refuses_are_refused(value: Any) -> None:
    with pytest.raises(DataError):
        Connection().pack_command("SET", "key", value)
    with pytest.raises(DataError):
        PACKED[Connection]().pack_command("SET", "key", value)


async def test_the_client_uses_the_packing_connection(settings: Settings) -> None:
    client = await create_redis(ensure_redis(settings))
    try:
        assert client.connection_pool.connection_class in PACKED.values()
        key = "test:packed"
        await client.set(key, "é" * 10_000)
        assert await client.get(key) == "é" * 10_000
        script = client.register_script("return #KEYS + #ARGV")
        assert await script(keys=[f"k{n}" for n in range(500)], args=list(range(700))) == 1200
        await client.delete(key)
    finally:
        await client.aclose()


def test_unix_sockets_are_packed_too() -> None:
    assert issubclass(PACKED[UnixDomainSocketConnection], UnixDomainSocketConnection)
