"""The asyncio Redis client: redis-py's, with its Lua scripts called over a `resp.Pipe`."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.commands.core import AsyncScript

from billfold.platform.resp import SERIALIZER, Pipe, Script

SOCKET_TIMEOUT_S = 5.0
HEALTH_CHECK_INTERVAL_S = 30


def _pack_command(self: Connection, *args: Any) -> list[bytes]:
    return SERIALIZER.pack(*args)  # type: ignore[no-any-return]


# redis-py's asyncio connections write commands with a pure-Python packer whose cost grows
# with the square of a command's length up to 6 kB (it joins the buffer anew for each argument):
# 260 µs for a script call of 500 arguments, the velocity counters' batch. Its synchronous
# client packs with hiredis when hiredis is installed; these connections do the same (8x
# faster there, the same bytes: tests/platform/test_redis.py).
PACKED: dict[type[AbstractConnection], type[AbstractConnection]] = {
    cls: type(cls.__name__, (cls,), {"pack_command": _pack_command})
    for cls in (Connection, SSLConnection, UnixDomainSocketConnection)
}


class Client(Redis):
    """redis-py's client, but the scripts it registers run over one pipelined connection of
    their own (platform.resp): the hot paths' calls (claims, balances, velocity counters, rate
    limits), each about 55 µs of CPU cheaper than through redis-py. Everything else goes
    through redis-py. Over TLS (rediss://), which the pipe does not speak, so do scripts."""

    pipe: Pipe | None = None
    _piped_scripts: dict[str, AsyncScript]

    # redis-py types register_script for its synchronous client and its asyncio one at once.
    def register_script(self, script: str | bytes | memoryview) -> AsyncScript:  # type: ignore[override]
        if self.pipe is None:
            return super().register_script(script)
        text = script if isinstance(script, str) else bytes(script).decode()
        # One object per script: the rate limits register theirs on every request.
        known = self._piped_scripts.get(text)
        if known is None:
            known = self._piped_scripts[text] = _PipedScript(self, text, self.pipe)
        return known

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self.pipe is not None:
            self.pipe.close()
        await super().aclose(close_connection_pool)


class _PipedScript(AsyncScript):
    """redis-py's script object (its type, for callers and pipelines), called over the pipe."""

    def __init__(self, client: Redis, source: str, pipe: Pipe) -> None:
        super().__init__(client, source)
        self._piped = Script(pipe, source)

    async def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        if client is not None:  # a pipeline: redis-py's way
            return await super().__call__(keys, args, client)
        return await self._piped(list(keys or []), list(args or []))


def _pipe_for(client: Redis) -> Pipe | None:
    """A pipe to the server and database `client` talks to; None over TLS."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    if issubclass(pool.connection_class, SSLConnection):
        return None
    unix = issubclass(pool.connection_class, UnixDomainSocketConnection)
    return Pipe(
        host=str(kwargs.get("host", "localhost")),
        port=int(kwargs.get("port", 6379)),
        path=str(kwargs["path"]) if unix else None,
        db=int(kwargs.get("db") or 0),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        timeout_s=SOCKET_TIMEOUT_S,
    )


async def create_redis(url: str) -> Client:
    """A client for `url` (redis://, rediss:// or unix://) that has answered PING.

    Replies are decoded to str. Fails at once, rather than at first use, if Redis is unreachable.
    """
    client = Client.from_url(
        url,
        decode_responses=True,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
    )
    assert isinstance(client, Client)
    pool = client.connection_pool
    pool.connection_class = PACKED.get(pool.connection_class, pool.connection_class)
    client.pipe, client._piped_scripts = _pipe_for(client), {}
    try:
        await client.ping()
    except BaseException:
        await client.aclose()
        raise
    return client
