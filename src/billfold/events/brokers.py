"""The brokers the relay publishes to, behind one small interface (Broker): Redis Streams, the
embedded default (stream `billfold:events`), and NATS JetStream (stream `BILLFOLD`, subjects
`billfold.<type>`, `Nats-Msg-Id` the event id, so that JetStream drops a duplicate). Another
(Kafka) is one more class here; producers write the outbox and never see a broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, NamedTuple, Protocol

import nats
import orjson
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.js.api import ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import BadRequestError
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

STREAM = "billfold:events"
# Redis keeps about this many messages: the outbox, not the stream, is the record.
STREAM_MAX_LEN = 1_000_000
NATS_STREAM = "BILLFOLD"
NATS_SUBJECTS = "billfold.>"
# How long JetStream may take to acknowledge a wave of messages (nats-py's own default).
PUBLISH_TIMEOUT_S = 5.0
# What a broker raises when it is down or slow: the relay retries, the rows wait.
BROKER_ERRORS = (RedisError, NatsError, TimeoutError, OSError)
# A message a group member took and did not acknowledge (it died) goes to another after this
# long (Redis: XAUTOCLAIM's idle time; JetStream: the consumer's ack_wait).
REDELIVER_AFTER_S = 30.0
# Every call to a broker gives up after this long (TimeoutError, one of BROKER_ERRORS), on top of
# any wait it asks for (a blocking read): a broker that hangs stalls the relay or a consumer this
# long at most, and a shutdown never waits on it longer.
OP_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 2.0

log = logging.getLogger(__name__)


class Message(NamedTuple):
    """One event as sent: its id (for de-duplication), its type, its CloudEvents JSON, and its
    ordering key (the account or person whose events keep their order), which is not sent."""

    id: str
    type: str
    body: bytes
    key: str = ""


class Broker(Protocol):
    async def publish(self, messages: Sequence[Message]) -> None:
        """Publish in the order given; return once the broker has them all, or raise."""

    def tail(self) -> AsyncIterator[Message]:
        """The messages published from now on, as they come."""

    async def group(self, name: str, member: str) -> Group:
        """A member of a consumer group: the group's members share its messages, each message
        goes to one of them, and what a member took and did not acknowledge (it died) goes to
        another after a while. A new group starts at the oldest message the broker keeps."""

    async def close(self) -> None:
        """Disconnect, within CLOSE_TIMEOUT_S; never raises a broker's error."""


class Taken(NamedTuple):
    """A message taken by a group member, with what acknowledges it."""

    message: Message
    handle: Any


class Group(Protocol):
    async def take(self, count: int, wait_s: float) -> list[Taken]:
        """Up to `count` messages, oldest first, waiting up to `wait_s` for the first."""

    async def ack(self, taken: Sequence[Taken]) -> None:
        """Done with these: the group will not hand them out again."""


class RedisStreams:
    def __init__(
        self, redis: Redis, *, stream: str = STREAM, redeliver_after_s: float = REDELIVER_AFTER_S
    ) -> None:
        self._redis = redis
        self._stream = stream
        self._redeliver_after_s = redeliver_after_s

    async def publish(self, messages: Sequence[Message]) -> None:
        async with asyncio.timeout(OP_TIMEOUT_S), self._redis.pipeline(transaction=False) as pipe:
            for m in messages:
                fields = {"id": m.id, "type": m.type, "event": m.body}
                pipe.xadd(self._stream, fields, maxlen=STREAM_MAX_LEN, approximate=True)  # type: ignore[arg-type]
            await pipe.execute()

    async def tail(self) -> AsyncIterator[Message]:
        last = "$"
        while True:
            async with asyncio.timeout(OP_TIMEOUT_S + 1):
                found: Any = await self._redis.xread({self._stream: last}, count=100, block=1000)
            for _, entries in found or ():
                for entry_id, fields in entries:
                    last = entry_id
                    yield _redis_message(fields)

    async def group(self, name: str, member: str) -> Group:
        async with asyncio.timeout(OP_TIMEOUT_S):
            with contextlib.suppress(ResponseError):  # BUSYGROUP: it is there already
                await self._redis.xgroup_create(self._stream, name, id="0", mkstream=True)
        return RedisGroup(self._redis, self._stream, name, member, self._redeliver_after_s)

    async def close(self) -> None:
        await close_within(self._redis.aclose(), "Redis")


class RedisGroup:
    """A member of a Redis Streams consumer group (XREADGROUP / XACK). Every little while (a third
    of `redeliver_after_s`, 10 s at most) it first takes over what a member left unacknowledged
    for `redeliver_after_s` (XAUTOCLAIM), going through the group's pending list with a cursor so
    that entries trimmed from the stream (which Redis 6.2 leaves pending) cannot hide the rest."""

    def __init__(
        self, redis: Redis, stream: str, name: str, member: str, redeliver_after_s: float
    ) -> None:
        self._redis = redis
        self._stream = stream
        self._name = name
        self._member = member
        self._idle_ms = max(1, int(redeliver_after_s * 1000))
        self._claim_every_s = min(redeliver_after_s / 3, 10.0)
        self._claimed_at = 0.0
        self._cursor = "0-0"

    async def take(self, count: int, wait_s: float) -> list[Taken]:
        async with asyncio.timeout(wait_s + OP_TIMEOUT_S):
            stale = await self._claim(count)
            if stale:
                return stale
            found: Any = await self._redis.xreadgroup(
                self._name,
                self._member,
                {self._stream: ">"},
                count=count,
                block=max(1, int(wait_s * 1000)),
            )
        return [Taken(_redis_message(f), i) for _, entries in found or () for i, f in entries if f]

    async def _claim(self, count: int) -> list[Taken]:
        now = time.monotonic()
        if now - self._claimed_at < self._claim_every_s:
            return []
        reply: Any = await self._redis.xautoclaim(
            self._stream, self._name, self._member, self._idle_ms, self._cursor, count
        )
        self._cursor = _text(reply[0])
        if self._cursor == "0-0":  # through the pending list: wait a while before the next pass
            self._claimed_at = now
        return [Taken(_redis_message(f), i) for i, f in reply[1] if f]

    async def ack(self, taken: Sequence[Taken]) -> None:
        if taken:
            async with asyncio.timeout(OP_TIMEOUT_S):
                await self._redis.xack(self._stream, self._name, *(t.handle for t in taken))


def _redis_message(fields: dict[str, Any]) -> Message:
    return Message(_text(fields["id"]), _text(fields["type"]), _bytes(fields["event"]))


class JetStream:
    """NATS JetStream: stream `stream`, subjects `<subject_prefix>billfold.>`, a message on the
    subject `<subject_prefix><type>`. The prefix and the stream's name let a test or the benchmark
    have a stream of its own on a shared server; the service uses neither."""

    def __init__(
        self,
        client: NatsClient,
        *,
        stream: str = NATS_STREAM,
        subject_prefix: str = "",
        redeliver_after_s: float = REDELIVER_AFTER_S,
    ) -> None:
        self._client = client
        # Every JetStream API call (a publish's acknowledgement too) waits OP_TIMEOUT_S at most.
        self._js = client.jetstream(timeout=OP_TIMEOUT_S)
        self._stream = stream
        self._prefix = subject_prefix
        self._redeliver_after_s = redeliver_after_s
        self._groups: dict[str, Any] = {}

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        stream: str = NATS_STREAM,
        subject_prefix: str = "",
        redeliver_after_s: float = REDELIVER_AFTER_S,
    ) -> JetStream:
        """Connected, with the stream made if it is not there yet. Once connected the client
        reconnects by itself for ever; the first connection is tried for OP_TIMEOUT_S (nats-py
        would try it for ever too), and the caller retries."""
        async with asyncio.timeout(OP_TIMEOUT_S):
            client = await nats.connect(
                # A comma-separated list names several servers of a cluster (the client also
                # learns the others from the first it reaches).
                url.split(","),
                connect_timeout=2,
                max_reconnect_attempts=-1,
                error_cb=_nats_error,
            )
        broker = cls(
            client,
            stream=stream,
            subject_prefix=subject_prefix,
            redeliver_after_s=redeliver_after_s,
        )
        try:
            with contextlib.suppress(BadRequestError):
                subjects = [f"{subject_prefix}{NATS_SUBJECTS}"]
                await broker._js.add_stream(StreamConfig(name=stream, subjects=subjects))
        except BaseException:
            await broker.close()
            raise
        return broker

    async def publish(self, messages: Sequence[Message]) -> None:
        # A wave is sent without waiting in between and acknowledged all at once: one round
        # trip a wave, not one a message (decision 126). The order of one key's messages
        # holds even when the connection drops mid-wave (the client sends what it buffered
        # after a reconnection, so a message lost on the way may be overtaken by a later one):
        # a wave holds at most one message a key, and the next goes once it is acknowledged.
        # A failure raises: the relay sends the batch again, and the stream drops the copies
        # of what it has (Nats-Msg-Id).
        for wave in waves(messages):
            acks = [
                await self._js.publish_async(
                    self._prefix + m.type, m.body, headers={"Nats-Msg-Id": m.id}
                )
                for m in wave
            ]
            done = await asyncio.wait_for(
                asyncio.gather(*acks, return_exceptions=True), PUBLISH_TIMEOUT_S
            )
            for outcome in done:
                if isinstance(outcome, BaseException):
                    raise outcome

    async def tail(self) -> AsyncIterator[Message]:
        sub = await self._js.subscribe(
            f"{self._prefix}{NATS_SUBJECTS}",
            stream=self._stream,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
        )
        try:
            async for msg in sub.messages:
                yield self._message(msg)
        finally:
            with contextlib.suppress(*BROKER_ERRORS):
                await sub.unsubscribe()

    async def group(self, name: str, member: str) -> Group:
        # A durable pull consumer is the group; JetStream hands a message not acknowledged
        # within ack_wait to another member. A member asked again (after a broker's error)
        # drops the subscription it had.
        old = self._groups.pop(name, None)
        if old is not None:
            with contextlib.suppress(*BROKER_ERRORS):
                await old.unsubscribe()
        sub = await self._js.pull_subscribe(
            f"{self._prefix}{NATS_SUBJECTS}",
            durable=name,
            stream=self._stream,
            config=ConsumerConfig(ack_wait=self._redeliver_after_s),
        )
        self._groups[name] = sub
        return NatsGroup(sub, self._message)

    def _message(self, msg: Any) -> Message:
        event_id = (msg.headers or {}).get("Nats-Msg-Id", "")
        return Message(event_id, msg.subject.removeprefix(self._prefix), msg.data)

    async def close(self) -> None:
        # close, not drain: every publish waited for its acknowledgement already, and drain
        # swallows a cancellation and waits on the server (30 s) when it is away.
        await close_within(self._client.close(), "NATS")


class NatsGroup:
    def __init__(self, sub: Any, message: Callable[[Any], Message]) -> None:
        self._sub = sub
        self._message = message

    async def take(self, count: int, wait_s: float) -> list[Taken]:
        try:
            msgs = await self._sub.fetch(count, timeout=wait_s)
        except TimeoutError:
            return []
        return [Taken(self._message(m), m) for m in msgs]

    async def ack(self, taken: Sequence[Taken]) -> None:
        for t in taken:
            await t.handle.ack()


def waves(messages: Sequence[Message]) -> list[list[Message]]:
    """The messages in order, cut before any whose key the current wave already holds."""
    cut: list[list[Message]] = []
    keys: set[str] = set()
    for m in messages:
        if not cut or m.key in keys:
            cut.append([])
            keys.clear()
        cut[-1].append(m)
        keys.add(m.key)
    return cut


async def connect(
    events_url: str | None, redis_url: str, *, redeliver_after_s: float = REDELIVER_AFTER_S
) -> Broker:
    """The broker the settings name: NATS JetStream for nats://, else Redis Streams."""
    if events_url and events_url.startswith("nats://"):
        return await JetStream.connect(events_url, redeliver_after_s=redeliver_after_s)
    # Every call is bounded here (OP_TIMEOUT_S), not by a socket timeout: with one, redis-py
    # sends each command under asyncio.wait_for, which on Python 3.11 can swallow a task's
    # cancellation (platform.tasks).
    redis = Redis.from_url(
        events_url or redis_url, decode_responses=True, socket_connect_timeout=OP_TIMEOUT_S
    )
    return RedisStreams(redis, redeliver_after_s=redeliver_after_s)


async def close_within(closing: Awaitable[None], broker: str) -> None:
    """Await a client's close for CLOSE_TIMEOUT_S at most, even if it swallows a cancellation
    (nats-py's does, waiting for a reconnection): past that it is cancelled and left behind.
    A failure to close is logged, never raised: the process is going away."""
    task = asyncio.ensure_future(closing)
    try:
        done, _ = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_S)
        if not done:
            log.warning("closing %s took over %.1fs; left behind", broker, CLOSE_TIMEOUT_S)
        elif not task.cancelled() and task.exception() is not None:
            log.warning("closing %s failed: %r", broker, task.exception())
    finally:
        if not task.done():
            task.cancel()


async def _nats_error(error: Exception) -> None:
    # nats-py's default prints a traceback at each failed reconnection: one line is enough.
    log.warning("NATS: %r", error)


def body_of(event: dict[str, object]) -> bytes:
    return orjson.dumps(event)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value
