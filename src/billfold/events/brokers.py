"""The brokers the relay publishes to, behind one small interface (Broker): Redis Streams, the
embedded default (stream `billfold:events`), and NATS JetStream (stream `BILLFOLD`, subjects
`billfold.<type>`, `Nats-Msg-Id` the event id, so that JetStream drops a duplicate). Another
(Kafka) is one more class here; producers write the outbox and never see a broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
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

    async def close(self) -> None: ...


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
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def publish(self, messages: Sequence[Message]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for m in messages:
                fields = {"id": m.id, "type": m.type, "event": m.body}
                pipe.xadd(STREAM, fields, maxlen=STREAM_MAX_LEN, approximate=True)  # type: ignore[arg-type]
            await pipe.execute()

    async def tail(self) -> AsyncIterator[Message]:
        last = "$"
        while True:
            found: Any = await self._redis.xread({STREAM: last}, count=100, block=1000)
            for _, entries in found or ():
                for entry_id, fields in entries:
                    last = entry_id
                    yield Message(
                        _text(fields["id"]), _text(fields["type"]), _bytes(fields["event"])
                    )

    async def group(self, name: str, member: str) -> Group:
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it is there already
            await self._redis.xgroup_create(STREAM, name, id="0", mkstream=True)
        return RedisGroup(self._redis, name, member)

    async def close(self) -> None:
        await self._redis.aclose()


class RedisGroup:
    """A member of a Redis Streams consumer group (XREADGROUP / XACK). Every CLAIM_EVERY_S it
    first takes over what a member left unacknowledged for CLAIM_IDLE_S (XAUTOCLAIM)."""

    CLAIM_IDLE_S = 30.0
    CLAIM_EVERY_S = 10.0

    def __init__(self, redis: Redis, name: str, member: str) -> None:
        self._redis = redis
        self._name = name
        self._member = member
        self._claimed_at = 0.0

    async def take(self, count: int, wait_s: float) -> list[Taken]:
        now = time.monotonic()
        if now - self._claimed_at > self.CLAIM_EVERY_S:
            self._claimed_at = now
            reply: Any = await self._redis.xautoclaim(
                STREAM, self._name, self._member, int(self.CLAIM_IDLE_S * 1000), "0-0", count
            )
            stale = [_redis_taken(i, f) for i, f in reply[1] if f]
            if stale:
                return stale
        found: Any = await self._redis.xreadgroup(
            self._name, self._member, {STREAM: ">"}, count=count, block=max(1, int(wait_s * 1000))
        )
        return [_redis_taken(i, f) for _, entries in found or () for i, f in entries if f]

    async def ack(self, taken: Sequence[Taken]) -> None:
        if taken:
            await self._redis.xack(STREAM, self._name, *(t.handle for t in taken))


def _redis_taken(entry_id: Any, fields: dict[str, Any]) -> Taken:
    message = Message(_text(fields["id"]), _text(fields["type"]), _bytes(fields["event"]))
    return Taken(message, entry_id)


class JetStream:
    """`stream` and `prefix` (put before every subject) give a stream of one's own beside the
    service's, on the same server: the benchmarks publish there, so that what they send never
    reaches the service's consumer groups."""

    def __init__(self, client: NatsClient, stream: str = NATS_STREAM, prefix: str = "") -> None:
        self._client = client
        self._js = client.jetstream()
        self._stream = stream
        self._prefix = prefix

    @classmethod
    async def connect(cls, url: str, stream: str = NATS_STREAM, prefix: str = "") -> JetStream:
        """Connected, with the stream made if it is not there yet."""
        client = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=-1)
        broker = cls(client, stream, prefix)
        with contextlib.suppress(BadRequestError):
            await broker._js.add_stream(
                StreamConfig(name=stream, subjects=[prefix + NATS_SUBJECTS])
            )
        return broker

    async def publish(self, messages: Sequence[Message]) -> None:
        # A wave is sent without waiting in between and acknowledged all at once: one round
        # trip a wave, not one a message (decision 124). The order of one key's messages
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
            self._prefix + NATS_SUBJECTS, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
        )
        try:
            async for msg in sub.messages:
                yield self._message(msg)
        finally:
            await sub.unsubscribe()

    async def group(self, name: str, member: str) -> Group:
        # A durable pull consumer is the group; JetStream hands a message not acknowledged
        # within ack_wait (30 s) to another member.
        sub = await self._js.pull_subscribe(
            self._prefix + NATS_SUBJECTS,
            durable=name,
            stream=self._stream,
            config=ConsumerConfig(ack_wait=30),
        )
        return NatsGroup(sub, self._message)

    def _message(self, msg: Any) -> Message:
        event_id = (msg.headers or {}).get("Nats-Msg-Id", "")
        return Message(event_id, msg.subject.removeprefix(self._prefix), msg.data)

    async def close(self) -> None:
        await self._client.drain()


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


async def connect(events_url: str | None, redis_url: str) -> Broker:
    """The broker the settings name: NATS JetStream for nats://, else Redis Streams."""
    if events_url and events_url.startswith("nats://"):
        return await JetStream.connect(events_url)
    return RedisStreams(Redis.from_url(events_url or redis_url, decode_responses=True))


def body_of(event: dict[str, object]) -> bytes:
    return orjson.dumps(event)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value
