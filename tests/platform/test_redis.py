"""create_redis: a client that has answered, or a connection error at once."""

from __future__ import annotations

import pytest
from redis import exceptions as errors

from billfold.config import Settings
from billfold.platform.embedded import ensure_redis
from billfold.platform.redis import create_redis


async def test_the_client_decodes_replies_and_runs_scripts(settings: Settings) -> None:
    client = await create_redis(ensure_redis(settings))
    try:
        key = "test:redis"
        await client.set(key, "é" * 10_000)
        assert await client.get(key) == "é" * 10_000
        script = client.register_script("return #KEYS + #ARGV")
        assert await script(keys=[f"k{n}" for n in range(500)], args=list(range(700))) == 1200
        await client.delete(key)
    finally:
        await client.aclose()


async def test_no_redis_is_a_connection_error_at_once() -> None:
    with pytest.raises(errors.ConnectionError):
        await create_redis("redis://127.0.0.1:1/0")
