"""One pipelined Redis connection for the money path's script calls.

Every transfer calls a Lua script or two (the idempotency claim or the velocity counters, and the
balance cache). Through redis-py a script call costs 120-140 µs of CPU here, most of it in
redis-py's own layers (connection pool, locks, retries, a stream reader); over this connection,
70-80 µs (docs/decisions.md, "Script calls on a connection of their own").

`Pipe` is that socket: one connection that many coroutines share. Each writes its command and
waits for its reply; Redis answers a connection's commands in order, so replies are handed out
in the order the commands went. A caller that gives up (cancelled, or its time is up) leaves its
place in the line, so the reply meant for it is dropped, never handed to the next one.

Errors are redis-py's (every one a RedisError), so callers handle them as before:
- no connection, or it broke: ConnectionError, for every command waiting on it; the next command
  connects again;
- no reply within the timeout: TimeoutError, and the connection is dropped (like redis-py's);
- an error reply: ResponseError (NoScriptError for NOSCRIPT).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
from typing import Any, cast

import hiredis
from redis import exceptions as errors
from redis.connection import HiredisRespSerializer

# Packs commands with hiredis; platform.redis's connections pack with it too.
SERIALIZER = HiredisRespSerializer()
CLIENT_NAME = "billfold-scripts"  # as CLIENT LIST shows the connection


class _ReplyError(Exception):
    """An error reply, as hiredis hands it over: turned into redis-py's error by `_error`."""


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.lost = False
        self._reader = hiredis.Reader(encoding="utf-8", replyError=_ReplyError)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    @property
    def usable(self) -> bool:
        return not self.lost and self.transport is not None and not self.transport.is_closing()

    def send(self, packed: list[bytes], waiter: asyncio.Future[Any]) -> None:
        assert self.transport is not None
        self.waiters.append(waiter)
        try:
            self.transport.writelines(packed)
        except (OSError, RuntimeError) as error:  # uvloop: a transport closed under us
            self.abort(errors.ConnectionError(f"could not write to Redis: {error!r}"))

    def data_received(self, data: bytes) -> None:
        reader, waiters = self._reader, self.waiters
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not False:
                waiter = waiters.popleft()
                if waiter.done():  # its caller gave up
                    continue
                if isinstance(reply, _ReplyError):
                    waiter.set_exception(_error(str(reply)))
                else:
                    waiter.set_result(reply)
        except (hiredis.ProtocolError, UnicodeDecodeError, IndexError) as error:
            # Bytes that are not RESP, text that is not UTF-8, or a reply nobody asked for:
            # nothing after it can be trusted to belong to anyone.
            self.abort(errors.ConnectionError(f"Redis sent what was not a reply to us: {error!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(errors.ConnectionError(f"Redis closed the connection: {exc or 'at its end'}"))

    def abort(self, error: Exception) -> None:
        self._fail(error)
        if self.transport is not None:
            with contextlib.suppress(RuntimeError):  # closed already
                self.transport.abort()

    def _fail(self, error: Exception) -> None:
        self.lost = True
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)


class Pipe:
    """One shared connection to Redis at a TCP address or a Unix socket path."""

    def __init__(
        self,
        *,
        host: str = "localhost",
        port: int = 6379,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self._host, self._port, self._path = host, port, path
        self._db, self._username, self._password = db, username, password
        self._timeout_s = timeout_s
        self._protocol: _Protocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Lock | None = None

    async def execute(self, *args: Any) -> Any:
        """Redis's reply to the command `args` (str for text: replies are decoded)."""
        packed = SERIALIZER.pack(*args)
        protocol = self._protocol
        loop = asyncio.get_running_loop()
        if protocol is None or not protocol.usable or self._loop is not loop:
            protocol = await self._connect(loop)
        waiter = loop.create_future()
        protocol.send(packed, waiter)
        try:
            async with asyncio.timeout(self._timeout_s):
                return await waiter
        except TimeoutError as error:  # the builtin one: asyncio's timeout above
            protocol.abort(errors.TimeoutError("Redis did not answer in time"))
            raise errors.TimeoutError(f"Redis did not answer within {self._timeout_s} s") from error

    def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        if self._loop is not loop:  # first use, or a new event loop: start afresh
            self._loop, self._protocol, self._connecting = loop, None, asyncio.Lock()
        assert self._connecting is not None
        async with self._connecting:
            protocol = self._protocol
            if protocol is not None and protocol.usable:
                return protocol  # another caller connected meanwhile
            protocol = _Protocol()
            try:
                async with asyncio.timeout(self._timeout_s):
                    if self._path is not None:
                        await loop.create_unix_connection(lambda: protocol, self._path)
                    else:
                        await loop.create_connection(lambda: protocol, self._host, self._port)
                    await self._greet(loop, protocol)
            except (OSError, TimeoutError) as error:
                protocol.abort(errors.ConnectionError("could not connect to Redis"))
                where = self._path or f"{self._host}:{self._port}"
                raise errors.ConnectionError(
                    f"could not connect to Redis at {where}: {error!r}"
                ) from None
            except BaseException:
                protocol.abort(errors.ConnectionError("could not connect to Redis"))
                raise
            self._protocol = protocol
            return protocol

    async def _greet(self, loop: asyncio.AbstractEventLoop, protocol: _Protocol) -> None:
        """Name the connection, log in and choose the database, as redis-py's connections do
        (AUTH must come first: on a server that requires a password, nothing else is allowed
        before it)."""
        commands: list[tuple[Any, ...]] = []
        if self._password is not None:
            login = (self._username, self._password) if self._username else (self._password,)
            commands.append(("AUTH", *login))
        commands.append(("CLIENT", "SETNAME", CLIENT_NAME))
        if self._db:
            commands.append(("SELECT", self._db))
        waiters = []
        for command in commands:
            waiters.append(loop.create_future())
            protocol.send(SERIALIZER.pack(*command), waiters[-1])
        for waiter in waiters:
            await waiter


class Script:
    """A Lua script called by its SHA over a `Pipe`, loaded into Redis on first use and again
    whenever Redis has forgotten it (a restart, SCRIPT FLUSH). Called like redis-py's:
    `await script(keys=[...], args=[...])`."""

    def __init__(self, pipe: Pipe, source: str) -> None:
        self._pipe = pipe
        self.script = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, keys: list[Any] | None = None, args: list[Any] | None = None) -> Any:
        keys, args = keys or [], args or []
        try:
            return await self._pipe.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except errors.NoScriptError:
            await self._pipe.execute("SCRIPT", "LOAD", self.script)
            return await self._pipe.execute("EVALSHA", self.sha, len(keys), *keys, *args)


def _error(message: str) -> errors.ResponseError:
    if message.startswith("NOSCRIPT"):
        return errors.NoScriptError(message)
    return errors.ResponseError(message)
