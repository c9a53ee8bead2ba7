"""The pipelined script connection: every reply reaches the caller it belongs to, whatever the
callers do, and a broken or silent Redis fails the calls waiting on it with redis-py's errors."""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from redis import exceptions as errors

from billfold.platform.redis import Client, create_redis
from billfold.platform.resp import Pipe, Script

ECHO = "return {KEYS[1], ARGV[1]}"
NEVER = "test:resp:never-pushed"  # BLPOP on it holds the pipe's connection (not Redis) a while


def _pipe(client: Client) -> Pipe:
    assert client.pipe is not None
    return client.pipe


async def test_concurrent_calls_each_get_their_own_reply(redis: Client) -> None:
    echo = redis.register_script(ECHO)
    assert redis.register_script(ECHO) is echo  # registered once, however often asked
    replies = await asyncio.gather(*(echo(keys=[f"k{n}"], args=[n]) for n in range(500)))
    assert replies == [[f"k{n}", str(n)] for n in range(500)]


async def test_scripts_reach_the_clients_database(redis: Client) -> None:
    setter = redis.register_script("return redis.call('SET', KEYS[1], ARGV[1])")
    assert await setter(keys=["test:resp:db"], args=["é ü"]) == "OK"
    assert await redis.get("test:resp:db") == "é ü"  # through redis-py, on the same database
    await redis.delete("test:resp:db")


async def test_a_caller_that_gives_up_leaves_its_reply_to_nobody(redis: Client) -> None:
    pipe = _pipe(redis)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pipe.execute("BLPOP", NEVER, 0.1), 0.02)
    # The late reply (nil) comes first on the same connection; it must not become this one's.
    assert await redis.register_script(ECHO)(keys=["k"], args=["mine"]) == ["k", "mine"]


async def test_an_error_reply_is_raised_and_the_connection_goes_on(redis: Client) -> None:
    failing = redis.register_script("return redis.error_reply('ERR no such thing')")
    echo = redis.register_script(ECHO)
    results = await asyncio.gather(
        echo(keys=["a"], args=[1]), failing(), echo(keys=["b"], args=[2]), return_exceptions=True
    )
    assert results[0] == ["a", "1"] and results[2] == ["b", "2"]
    assert isinstance(results[1], errors.ResponseError)
    assert "no such thing" in str(results[1])


async def test_a_reply_that_is_not_utf8_fails_and_the_pipe_goes_on(redis: Client) -> None:
    garbled = redis.register_script("return '\\255\\254'")  # bytes 0xff 0xfe
    with pytest.raises(errors.ConnectionError, match="UnicodeDecodeError"):
        await garbled()
    assert await _pipe(redis).execute("PING") == "PONG"


async def test_a_script_redis_forgot_is_loaded_again(redis: Client) -> None:
    source = "return 'forgotten ' .. ARGV[1]"  # a script no other test loads
    script = Script(_pipe(redis), source)
    assert await script(args=["once"]) == "forgotten once"
    await redis.script_flush()
    assert await script(args=["twice"]) == "forgotten twice"


async def test_a_killed_connection_fails_its_callers_and_the_next_call_reconnects(
    redis: Client,
) -> None:
    pipe = _pipe(redis)
    in_flight = asyncio.ensure_future(pipe.execute("BLPOP", NEVER, 5))
    await asyncio.sleep(0.05)
    clients = await redis.client_list()
    mine = [c for c in clients if c.get("name") == "billfold-scripts"]
    assert mine, clients
    for client in mine:
        await redis.client_kill_filter(_id=client["id"])
    with pytest.raises(errors.ConnectionError):
        await in_flight
    assert await pipe.execute("PING") == "PONG"


async def test_a_connection_closed_under_the_pipe_is_replaced(redis: Client) -> None:
    pipe = _pipe(redis)
    assert await pipe.execute("PING") == "PONG"
    assert pipe._protocol is not None and pipe._protocol.transport is not None
    pipe._protocol.transport.close()  # before the pipe has heard of it
    assert await pipe.execute("PING") == "PONG"


async def test_silence_times_out_and_drops_the_connection(redis_url: str) -> None:
    client = await create_redis(redis_url)
    try:
        pipe = Pipe(**_where(client), timeout_s=0.05)
        assert await pipe.execute("PING") == "PONG"
        blocked = asyncio.ensure_future(pipe.execute("BLPOP", NEVER, 0.5))
        await asyncio.sleep(0)  # BLPOP goes first
        behind = asyncio.ensure_future(pipe.execute("PING"))
        with pytest.raises(errors.TimeoutError):
            await blocked
        # The connection was dropped: what waited behind the silence fails with it.
        with pytest.raises(errors.TimeoutError):
            await behind
        assert await pipe.execute("PING") == "PONG"  # on a new connection
        pipe.close()
    finally:
        await client.aclose()


def test_uvloop_the_servers_loop(redis_url: str) -> None:
    async def scenario() -> list[object]:
        client = await create_redis(redis_url)
        try:
            echo = client.register_script(ECHO)
            return list(await asyncio.gather(*(echo(keys=["k"], args=[n]) for n in range(50))))
        finally:
            await client.aclose()

    assert uvloop.run(scenario()) == [["k", str(n)] for n in range(50)]


async def test_no_redis_is_a_connection_error() -> None:
    pipe = Pipe(host="127.0.0.1", port=1, timeout_s=1)
    with pytest.raises(errors.ConnectionError, match=r"127\.0\.0\.1:1"):
        await pipe.execute("PING")


async def test_tls_urls_keep_redis_pys_scripts() -> None:
    client = Client.from_url("rediss://127.0.0.1:1/0")
    assert client.pipe is None
    assert type(client.register_script("return 1")).__name__ == "AsyncScript"
    await client.aclose()


def _where(client: Client) -> dict[str, object]:
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return {"path": kwargs["path"], "db": kwargs.get("db", 0)}
    return {"host": kwargs["host"], "port": kwargs["port"], "db": kwargs.get("db", 0)}
