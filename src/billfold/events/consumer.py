"""Consumers of the stream: each is a named group (`notifications`, `webhooks`, `figures`) whose
members, one per API process, share the events; a handler gets them in batches, oldest first.

Delivery is at least once: a batch is acknowledged only after its handler returned, so a member
that dies mid-batch has it handed to another (events.brokers.Group). A handler therefore drops
what it has seen (by event id) and raises to have the batch tried again. A batch that keeps
failing is tried one event at a time, and an event that still fails after POISON_TRIES is logged
with its id, counted (billfold_events_dead) and acknowledged, so one bad event does not stop its
group: `billfold events replay` puts it back once the cause is fixed. A fault of the
infrastructure (the database or a broker away: TRANSIENT) is no event's: it is retried until it
passes, and counts for nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from prometheus_client import Counter

from billfold.config import Settings
from billfold.events.brokers import BROKER_ERRORS, Broker, Group, Taken, connect
from billfold.platform.tasks import raise_if_cancelling

log = logging.getLogger(__name__)

CloudEvent = dict[str, Any]
# Takes a batch of events (CloudEvents JSON, oldest first); idempotent by event id.
Handler = Callable[[Sequence[CloudEvent]], Awaitable[None]]

BATCH_MAX = 100
WAIT_S = 1.0
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0
POISON_TRIES = 5
# Faults of the infrastructure, not of an event: a handler failing with one is retried until it
# passes (see _tried), never given up on.
TRANSIENT = (
    *BROKER_ERRORS,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)

EVENTS_CONSUMED = Counter(
    "billfold_events_consumed",
    "Events a consumer group's handler finished, by group.",
    ["group"],
)
EVENTS_DEAD = Counter(
    "billfold_events_dead",
    "Events a consumer group gave up on after POISON_TRIES failures (logged with their ids).",
    ["group"],
)


@dataclass(frozen=True, slots=True)
class Consumer:
    """A group and its handler, as the app starts them (billfold.app)."""

    group: str
    handle: Handler


def member_name() -> str:
    """This process's name in every group: host and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


async def consume_once(group: Group, name: str, handle: Handler, batch_max: int = BATCH_MAX) -> int:
    """Take one batch, handle it, acknowledge it; how many events were handled."""
    taken = await group.take(batch_max, WAIT_S)
    if not taken:
        return 0
    await _handle(taken, name, handle)
    await group.ack(taken)
    EVENTS_CONSUMED.labels(name).inc(len(taken))
    return len(taken)


async def _handle(taken: Sequence[Taken], name: str, handle: Handler) -> None:
    events = [orjson.loads(t.message.body) for t in taken]
    if await _tried(events, name, handle):
        return
    if len(events) > 1:
        for event in events:  # find the one that fails; the others go through
            if not await _tried([event], name, handle):
                _give_up(event, name)
        return
    _give_up(events[0], name)


async def _tried(events: list[CloudEvent], name: str, handle: Handler) -> bool:
    """Whether the handler took `events` before failing POISON_TRIES times, with back-off. A
    fault of the infrastructure (TRANSIENT) is not the events' and does not count: it is tried
    again (every RETRY_MAX_S at most) until it passes or the member is stopped, so that a
    database away for a minute does not turn every event of that minute into a dead one."""
    delay = RETRY_FIRST_S
    failures = 0
    while True:
        raise_if_cancelling()
        try:
            await handle(events)
            return True
        except TRANSIENT as error:
            log.warning("event handler of %s: infrastructure fault, retrying: %r", name, error)
        except Exception as error:  # noqa: BLE001 - any handler fault: retried, then given up
            failures += 1
            if failures >= POISON_TRIES:
                return False
            log.warning("event handler of %s failed, retrying: %r", name, error)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_S)


def _give_up(event: CloudEvent, name: str) -> None:
    log.error("event handler of %s gave up on event %s", name, event.get("id"))
    EVENTS_DEAD.labels(name).inc()


async def serve(consumer: Consumer, settings: Settings, redis_url: str) -> None:
    """One process's member of a group, until cancelled: joins the group (retrying while the
    broker is down; the events wait there), then takes and handles batches. What it took when
    cancelled is not acknowledged: the group hands it to another member (events.brokers)."""
    delay = RETRY_FIRST_S
    broker: Broker | None = None
    try:
        while True:
            raise_if_cancelling()
            try:
                if broker is None:
                    broker = await connect(
                        settings.events_url,
                        redis_url,
                        redeliver_after_s=settings.events_redeliver_after_s,
                    )
                group = await broker.group(consumer.group, member_name())
                while True:
                    raise_if_cancelling()
                    await consume_once(group, consumer.group, consumer.handle)
                    delay = RETRY_FIRST_S
            except BROKER_ERRORS as error:
                log.warning("event consumer %s: broker failed, retrying: %r", consumer.group, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
    finally:
        if broker is not None:
            await broker.close()
