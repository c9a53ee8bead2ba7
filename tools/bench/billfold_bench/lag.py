"""Commit-to-consumer lag of `billfold bench events`: ledger transfers at a steady rate through
the Ledger engine (outbox on), a relay publishing them to a broker, and a consumer group member
reading the stream through the product's own consumer loop (events.consumer.consume_once).

The lag of a transfer is the moment the consumer's handler got its `transfer.completed` event
less the moment the driver's `ledger.move` returned, that is once its batch had committed (one
clock: the driver, relay and consumer share this process). The event's `time` is not the commit
time: it is the database's clock when the batch locked its accounts, a few milliseconds before
it committed; the lag from it is reported beside, as `from_event_time`.

Where the time goes, for each transfer: from its commit to the relay handing its event to the
broker (the relay's poll and read: commit_to_relay), and from there to the consumer (the
publish, the broker, the group member's fetch: relay_to_consumer); beside them, how long the
relay's publish call that carried it took in all (publish_call: its batch's acknowledgements;
on JetStream a consumer may get the first events of a batch before the call ends).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from billfold.config import Settings
from billfold.events.brokers import Broker, Group, Message
from billfold.events.consumer import consume_once
from billfold.events.relay import Relay
from billfold.ledger.engine import Ledger
from billfold.ledger.errors import LedgerError
from billfold.platform.tasks import raise_if_cancelling, stop
from billfold_bench import say

TICK_S = 0.005  # the driver starts the transfers due every tick
PROGRESS_EVERY_S = 5.0
DRAIN_MAX_S = 30.0  # after the measured window, how long the last events may take to arrive
DRAIN_POLL_S = 0.05


class Timed:
    """The relay's broker, remembering when each transfer's event was handed to the broker
    and when the broker had it, and each publish's size."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.began: dict[int, float] = {}
        self.ended: dict[int, float] = {}
        self.sizes: list[int] = []

    async def publish(self, messages: Sequence[Message]) -> None:
        began = time.perf_counter()
        await self.broker.publish(messages)
        ended = time.perf_counter()
        self.sizes.append(len(messages))
        for m in messages:
            transfer_id = int(orjson.loads(m.body)["data"]["transfer_id"])
            self.began[transfer_id] = began
            self.ended[transfer_id] = ended

    def tail(self) -> AsyncIterator[Message]:
        return self.broker.tail()

    async def group(self, name: str, member: str) -> Group:
        return await self.broker.group(name, member)

    async def close(self) -> None:
        await self.broker.close()


async def measure_lag(
    pool: asyncpg.Pool,
    settings: Settings,
    broker: Broker,
    label: str,
    wallets: list[int],
    *,
    rate: int,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    """Transfers at `rate`/s for `warmup` then `seconds` s (measured), with a relay and a
    consumer running; the lag of the measured ones, and its parts."""
    timed = Timed(broker)
    relay = Relay(pool, timed, partitions=settings.events_partitions)
    group = await broker.group(f"bench-{uuid.uuid4().hex[:8]}", "bench")
    received: dict[int, float] = {}
    from_event_time: dict[int, float] = {}

    async def handle(events: Sequence[dict[str, Any]]) -> None:
        now, wall = time.perf_counter(), time.time()
        for event in events:
            transfer_id = int(event["data"]["transfer_id"])
            if transfer_id not in received:  # delivery is at least once: the first counts
                received[transfer_id] = now
                event_time = datetime.fromisoformat(event["time"]).timestamp()
                from_event_time[transfer_id] = wall - event_time

    ledger = Ledger(pool, settings)
    await ledger.start()
    workers = [
        asyncio.create_task(relay.run(), name="bench-relay"),
        asyncio.create_task(_consume(group, handle), name="bench-consumer"),
    ]
    try:
        driver = Driver(ledger, wallets, rate)
        await driver.run(warmup, None)
        committed: dict[int, float] = {}
        await driver.run(
            seconds, committed, progress=lambda s: _progress(label, s, committed, received)
        )
        measured_s = driver.elapsed
        await _wait_for(committed, received)
    finally:
        # Bounded: a worker whose await swallowed its cancellation (Python 3.11's wait_for,
        # nats-py's fetch) would otherwise hold the benchmark, and a test of it, for ever.
        for worker in workers:
            await stop(worker)
        await ledger.stop()
    return _figures(committed, received, from_event_time, timed, measured_s, driver.refused)


class Driver:
    """Starts transfers between random wallets at a steady rate, each on its own (an open
    loop: a slow one does not hold the next back)."""

    def __init__(self, ledger: Ledger, wallets: list[int], rate: int) -> None:
        self._ledger = ledger
        self._wallets = wallets
        self._rate = rate
        self._rng = random.Random(27)
        self._run_id = uuid.uuid4().hex[:8]
        self._sent = 0
        self.refused = 0
        self.elapsed = 0.0

    async def run(
        self, seconds: float, committed: dict[int, float] | None, progress: Any = None
    ) -> None:
        """Transfers for `seconds`; each one's commit time goes into `committed` (if given)."""
        in_flight: set[asyncio.Task[None]] = set()
        started = time.perf_counter()
        shown_at = started
        due_before = 0
        while (elapsed := time.perf_counter() - started) < seconds:
            due = int(elapsed * self._rate)
            for _ in range(due - due_before):
                task = asyncio.create_task(self._one(committed))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            due_before = due
            if progress is not None and time.perf_counter() - shown_at >= PROGRESS_EVERY_S:
                shown_at = time.perf_counter()
                progress(elapsed)
            await asyncio.sleep(TICK_S)
        await asyncio.gather(*in_flight)
        self.elapsed = time.perf_counter() - started

    async def _one(self, committed: dict[int, float] | None) -> None:
        debit, credit = self._rng.sample(self._wallets, 2)
        self._sent += 1
        try:
            transfer = await self._ledger.move(
                "bench",
                f"{self._run_id}-{self._sent}",
                debit_account_id=debit,
                credit_account_id=credit,
                amount_minor=self._rng.randint(1, 1_000),
                currency="USD",
                code="p2p",
            )
        except LedgerError:
            self.refused += 1
            return
        if committed is not None:
            committed[transfer.id] = time.perf_counter()


async def _consume(group: Group, handle: Any) -> None:
    while True:
        raise_if_cancelling()
        await consume_once(group, "bench", handle)


def _progress(
    label: str, elapsed: float, committed: dict[int, float], received: dict[int, float]
) -> None:
    lags = [received[t] - c for t, c in committed.items() if t in received]
    p99 = f"{percentile_ms(lags, 0.99):.0f} ms" if lags else "-"
    say(f"  {label}: {elapsed:.0f} s, {len(committed):,} committed, lag p99 so far {p99}")


async def _wait_for(committed: dict[int, float], received: dict[int, float]) -> None:
    """Until every measured transfer's event has reached the consumer, or DRAIN_MAX_S."""
    for _ in range(int(DRAIN_MAX_S / DRAIN_POLL_S)):
        if committed.keys() <= received.keys():
            return
        await asyncio.sleep(DRAIN_POLL_S)


def _figures(
    committed: dict[int, float],
    received: dict[int, float],
    from_event_time: dict[int, float],
    timed: Timed,
    seconds: float,
    refused: int,
) -> dict[str, Any]:
    arrived = [t for t in committed if t in received]
    relayed = [t for t in arrived if t in timed.began]
    parts = {
        "commit_to_relay": [timed.began[t] - committed[t] for t in relayed],
        "relay_to_consumer": [received[t] - timed.began[t] for t in relayed],
        "publish_call": [timed.ended[t] - timed.began[t] for t in relayed],
    }
    lags = [received[t] - committed[t] for t in arrived]
    return {
        "transfers": len(committed),
        "transfers_per_s": round(len(committed) / seconds, 1),
        "refused": refused,
        "missing": len(committed) - len(arrived),
        "lag_ms_p50": percentile_ms(lags, 0.5),
        "lag_ms_p99": percentile_ms(lags, 0.99),
        "lag_ms_max": percentile_ms(lags, 1.0),
        "from_event_time_ms_p50": percentile_ms([from_event_time[t] for t in arrived], 0.5),
        "from_event_time_ms_p99": percentile_ms([from_event_time[t] for t in arrived], 0.99),
        "parts_ms": {
            name: {"p50": percentile_ms(values, 0.5), "p99": percentile_ms(values, 0.99)}
            for name, values in parts.items()
        },
        "publishes": len(timed.sizes),
        "publish_size_mean": round(statistics.fmean(timed.sizes), 1) if timed.sizes else 0.0,
    }


def percentile_ms(seconds: list[float], q: float) -> float:
    """The q-th quantile (0..1) of durations in seconds, in milliseconds; 0 for none."""
    if not seconds:
        return 0.0
    ordered = sorted(seconds)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000, 1)
