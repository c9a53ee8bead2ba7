"""Consumer groups, on Redis Streams and on JetStream: members share a group's messages, what a
dead member took goes to another, a failing handler is retried and a poison event given up."""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import Sequence

import orjson
import pytest
from prometheus_client import REGISTRY

from billfold.events import consumer
from billfold.events.brokers import Broker, Message
from billfold.events.consumer import POISON_TRIES, CloudEvent, consume_once
from tests.events.conftest import MakeBroker


async def publish(broker: Broker, count: int) -> list[str]:
    """`count` events on the broker's stream; their ids, in order."""
    kind = "billfold.test.happened.v1"
    ids = [str(uuid.uuid4()) for _ in range(count)]
    await broker.publish([Message(i, kind, orjson.dumps({"id": i, "type": kind})) for i in ids])
    return ids


def group_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def dead(group: str) -> float:
    return REGISTRY.get_sample_value("billfold_events_dead_total", {"group": group}) or 0.0


async def test_two_members_of_a_group_share_its_messages_each_once(
    make_broker: MakeBroker,
) -> None:
    """Two members taking at once handle every message once between them, and both take part."""
    ids = await publish(await make_broker(), 60)
    group = group_name()
    members = [await (await make_broker()).group(group, f"member-{n}") for n in range(2)]
    handled: list[list[str]] = [[], []]

    async def work(n: int) -> None:
        async def handle(events: Sequence[CloudEvent]) -> None:
            handled[n].extend(e["id"] for e in events)
            await asyncio.sleep(0.02)  # a handler's work: the other member takes meanwhile

        while len(handled[0]) + len(handled[1]) < len(ids):
            await consume_once(members[n], group, handle, batch_max=5)

    async with asyncio.timeout(30):
        await asyncio.gather(work(0), work(1))
    counts = collections.Counter(handled[0] + handled[1])
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    assert handled[0] and handled[1], "one member took everything"
    assert [await m.take(10, 0.3) for m in members] == [[], []]


async def test_what_a_dead_member_took_goes_to_another(make_broker: MakeBroker) -> None:
    """A member that took messages and died without acknowledging them: after redeliver_after_s
    (not before) another member of the group is handed them."""
    ids = await publish(await make_broker(), 10)
    group = group_name()
    dying_client = await make_broker(redeliver_after_s=1.0)
    taken = await (await dying_client.group(group, "dying")).take(10, 2.0)
    assert taken
    await dying_client.close()
    survivor = await (await make_broker(redeliver_after_s=1.0)).group(group, "survivor")
    got: list[str] = []

    async def handle(events: Sequence[CloudEvent]) -> None:
        got.extend(e["id"] for e in events)

    early = await survivor.take(10, 0.3)
    assert {t.message.id for t in taken}.isdisjoint(t.message.id for t in early)
    await survivor.ack(early)
    got += [t.message.id for t in early]
    async with asyncio.timeout(15):
        while set(got) != set(ids):
            await consume_once(survivor, group, handle)
    assert {t.message.id for t in taken} <= set(got)


async def test_a_failing_handler_is_retried_and_a_poison_event_given_up(
    make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler that fails twice on an event then takes it: the event is handled. One that
    always fails on an event: the batch's others are handled, that one is tried POISON_TRIES
    times alone, counted in billfold_events_dead and acknowledged (not handed out again)."""
    monkeypatch.setattr(consumer, "RETRY_FIRST_S", 0.01)  # the back-off's shape, not its length
    ids = await publish(await make_broker(), 6)
    flaky, poison = ids[1], ids[4]
    group = group_name()
    member = await (await make_broker(redeliver_after_s=0.5)).group(group, "member")
    handled: list[str] = []
    alone: collections.Counter[str] = collections.Counter()
    flaky_failures = [ValueError("flaky"), ValueError("flaky")]

    async def handle(events: Sequence[CloudEvent]) -> None:
        batch = [e["id"] for e in events]
        if len(batch) == 1:
            alone[batch[0]] += 1
        if poison in batch:
            raise ValueError("poison")
        if flaky in batch and flaky_failures:
            raise flaky_failures.pop()
        handled.extend(batch)

    before = dead(group)
    async with asyncio.timeout(20):
        while len(set(handled)) < len(ids) - 1:
            await consume_once(member, group, handle)
    assert set(handled) == set(ids) - {poison}
    assert alone[poison] == POISON_TRIES
    assert dead(group) == before + 1
    await asyncio.sleep(0.7)  # past redeliver_after_s: anything unacknowledged would be back
    assert await member.take(10, 0.5) == []


async def test_a_fault_of_the_infrastructure_is_retried_until_it_passes(
    make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler failing with a connection error (the database away) more than POISON_TRIES
    times is retried until it passes: the event is handled, none is given up."""
    monkeypatch.setattr(consumer, "RETRY_FIRST_S", 0.01)
    monkeypatch.setattr(consumer, "RETRY_MAX_S", 0.02)
    ids = await publish(await make_broker(), 3)
    group = group_name()
    member = await (await make_broker()).group(group, "member")
    outage = [ConnectionRefusedError("database away")] * (POISON_TRIES * 2)
    handled: list[str] = []

    async def handle(events: Sequence[CloudEvent]) -> None:
        if outage:
            raise outage.pop()
        handled.extend(e["id"] for e in events)

    async with asyncio.timeout(20):
        while len(handled) < len(ids):
            await consume_once(member, group, handle)
    assert handled == ids
    assert dead(group) == 0
