"""Consumers of the stream: each is a named group (`notifications`, `webhooks`, `figures`) whose
members, one per API process, share the events; a handler gets them in batches, oldest first.

Delivery is at least once: a batch is acknowledged only after its handler returned, so a member
that dies mid-batch has it handed to another (events.brokers.Group). A handler therefore drops
what it has seen (by event id) and raises to have the batch tried again. A batch that keeps
failing is tried one event at a time, and an event that still fails after POISON_TRIES is logged
with its id, counted (billfold_events_dead) and acknowledged, so one bad event does not stop its
group: `billfold events replay` puts it back once the cause is fixed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import Counter

from billfold.config import Settings
from billfold.events.brokers import BROKER_ERRORS, Broker, Group, Taken, connect

log = logging.getLogger(__name__)

CloudEvent = dict[str, Any]
# Takes a batch of events (CloudEvents JSON, oldest first); idempotent by event id.
Handler = Callable[[Sequence[CloudEvent]], Awaitable[None]]

BATCH_MAX = 100
WAIT_S = 1.0
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 5.0
POISON_TRIES = 5

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
    delay = RETRY_FIRST_S
    for attempt in range(1, POISON_TRIES + 1):
        try:
            await handle(events)
            return
        except Exception as error:  # noqa: BLE001 - any handler fault: retried, then dead-lettered
            if attempt == POISON_TRIES:
                break
            log.warning("event handler failed, retrying: %s %r", name, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
    if len(events) > 1:
        for event in events:  # find the one that fails; the others go through
            await _handle_one(event, name, handle)
        return
    await _give_up(events[0], name)


async def _handle_one(event: CloudEvent, name: str, handle: Handler) -> None:
    delay = RETRY_FIRST_S
    for _ in range(POISON_TRIES):
        try:
            await handle([event])
            return
        except Exception:  # noqa: BLE001 - as in _handle
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
    await _give_up(event, name)


async def _give_up(event: CloudEvent, name: str) -> None:
    log.error("event handler of %s gave up on event %s", name, event.get("id"))
    EVENTS_DEAD.labels(name).inc()


def cancelling() -> bool:
    """Whether this task has been asked to stop. On Python 3.11 asyncio.wait_for, which
    redis-py writes each command with, returns its result and drops the CancelledError of a
    cancel that arrives as the write completes: the request is still counted, and a loop that
    checks it stops all the same (else the app's shutdown would wait for it forever)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def serve(consumer: Consumer, settings: Settings, redis_url: str) -> None:
    """One process's member of a group, until cancelled: joins the group (retrying while the
    broker is down; the events wait there), then takes and handles batches."""
    delay = RETRY_FIRST_S
    broker: Broker | None = None
    while True:
        try:
            if broker is None:
                broker = await connect(settings.events_url, redis_url)
            group = await broker.group(consumer.group, member_name())
            while not cancelling():
                await consume_once(group, consumer.group, consumer.handle)
                delay = RETRY_FIRST_S
            raise asyncio.CancelledError
        except asyncio.CancelledError:
            if broker is not None:
                await broker.close()
            raise
        except BROKER_ERRORS as error:
            log.warning("event consumer %s: broker failed, retrying: %r", consumer.group, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
