"""Faults on the way out: a relay killed mid-publish (cancelled, or its database connection
terminated) and a broker stopped under load lose no event: another relay or the broker's return
publishes everything, at least once, in order per ordering key, while the money path goes on."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson
import pytest
from redis.asyncio import Redis

from billfold.config import Settings
from billfold.events import consumer, outbox, relay
from billfold.events.brokers import Broker, Message, RedisStreams
from billfold.events.consumer import CloudEvent, Consumer
from billfold.events.relay import LOCK_SPACE, Relay
from billfold.ledger.engine import Ledger
from billfold.platform import tasks
from billfold.platform.db import create_pool
from tests.events.conftest import OpenWallet

# The issue asks for 30 s of broker outage; the test's default is shorter so that the suite stays
# fast (what an outage does to the relay and the consumers is the same after a few seconds of it:
# their back-off is at its cap). CI may set BILLFOLD_TEST_BROKER_OUTAGE_S=30.
OUTAGE_S = float(os.environ.get("BILLFOLD_TEST_BROKER_OUTAGE_S", "5"))
# A transfer's time while the broker is away, at most: the money path never waits on a broker.
SERVING_MAX_S = 2.0
SERVERS = {"redis": "/usr/bin/redis-server", "nats": "/usr/sbin/nats-server"}


class PrivateBroker:
    """A broker server of the test's own, that it stops and starts again without touching the
    machine's shared ones. Its data outlives a restart, as a real broker's must (Redis with an
    append-only file: one that forgets what it acknowledged loses events whatever the relay
    does; JetStream's file store)."""

    def __init__(self, kind: str, data_dir: Path) -> None:
        self.kind = kind
        self.data_dir = data_dir
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        scheme = "redis" if self.kind == "redis" else "nats"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        port = str(self.port)
        if self.kind == "redis":
            command = [SERVERS["redis"], "--port", port, "--bind", "127.0.0.1", "--save", ""]
            command += ["--appendonly", "yes", "--dir", str(self.data_dir)]
        else:
            command = [SERVERS["nats"], "-js", "-a", "127.0.0.1", "-p", port]
            command += ["-sd", str(self.data_dir)]
        with (self.data_dir / f"{self.kind}.log").open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *command, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        async with asyncio.timeout(10):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                await writer.wait_closed()
                return

    async def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            async with asyncio.timeout(10):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        self.process = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(params=["redis", "nats"])
async def private_broker(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[PrivateBroker]:
    if not shutil.which(SERVERS[request.param]):
        if os.environ.get("CI"):
            pytest.fail(f"{SERVERS[request.param]} is missing")
        pytest.skip(f"no {SERVERS[request.param]}")
    server = PrivateBroker(request.param, tmp_path)
    await server.start()
    yield server
    await server.stop()


class Stalling:
    """A broker that passes the first `passed` messages of a batch on, then waits to be let go
    before the rest: a relay caught in the middle of a publish."""

    def __init__(self, inner: Broker, passed: int) -> None:
        self.inner = inner
        self.passed = passed
        self.reached = asyncio.Event()
        self.let_go = asyncio.Event()

    async def publish(self, messages: Sequence[Message]) -> None:
        await self.inner.publish(messages[: self.passed])
        self.reached.set()
        await self.let_go.wait()
        await self.inner.publish(messages[self.passed :])

    def tail(self) -> AsyncIterator[Message]:
        raise NotImplementedError

    async def close(self) -> None:
        pass


async def write_events(pool: asyncpg.Pool, count: int, keys: int) -> dict[str, list[str]]:
    """`count` events over `keys` ordering keys, written in one transaction each (so that their
    ids follow their commits); their ids by ordering key, in the order written."""
    tag = uuid.uuid4().hex[:8]
    written: dict[str, list[str]] = {}
    for n in range(count):
        key = f"account/fault-{tag}-{n % keys}"
        event = outbox.Event("test.happened", f"thing/{n}", key, datetime.now(UTC), {"n": n})
        async with pool.acquire() as conn, conn.transaction():
            await outbox.write(conn, [event])
        written.setdefault(key, []).append(str(event.id))
    return written


async def published(redis: Redis, stream: str) -> list[tuple[str, str]]:
    """Every (event id, subject) on the stream, in its order."""
    entries = await redis.xrange(stream)
    return [(fields["id"], orjson.loads(fields["event"])["subject"]) for _, fields in entries]


def assert_all_once_or_more_in_order(written: dict[str, list[str]], sent: list[str]) -> None:
    """Every written event was sent, and per ordering key their first sendings keep the order
    in which they were written (a repeat, at least once, is allowed anywhere after)."""
    for key, ids in written.items():
        mine = set(ids)
        first = list(dict.fromkeys(i for i in sent if i in mine))
        assert first == ids, f"{key}: events missing or out of order"


async def drain(relay_: Relay) -> None:
    async with asyncio.timeout(30):
        while await relay_.publish_once():
            pass


async def test_a_relay_cancelled_mid_publish_leaves_its_rows_to_the_next(
    pool: asyncpg.Pool, redis: Redis
) -> None:
    """A relay task cancelled while the broker has part of its batch marks nothing: the next
    relay publishes every event, those sent already a second time, in order per key."""
    written = await write_events(pool, 30, keys=3)
    stream = f"test:faults:{uuid.uuid4().hex[:12]}"
    broker = RedisStreams(redis, stream=stream)
    stalling = Stalling(broker, passed=7)
    running = asyncio.create_task(Relay(pool, stalling, batch_max=20).run())
    async with asyncio.timeout(10):
        await stalling.reached.wait()
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert running.cancelled()
    await drain(Relay(pool, broker))
    sent = [event_id for event_id, _ in await published(redis, stream)]
    assert_all_once_or_more_in_order(written, sent)
    await redis.delete(stream)


async def test_a_relay_whose_connection_is_terminated_is_taken_over(
    pool: asyncpg.Pool, redis: Redis, settings: Settings
) -> None:
    """A relay stalled mid-publish whose database connection is terminated (the server's side of
    a crash): its lease goes with the connection, another relay publishes everything meanwhile,
    and the first, let go, fails to mark its batch, publishes again (at least once) and goes on."""
    written = await write_events(pool, 30, keys=3)
    stream = f"test:faults:{uuid.uuid4().hex[:12]}"
    broker = RedisStreams(redis, stream=stream)
    stalling = Stalling(broker, passed=7)
    assert settings.database_url is not None
    own_pool = await create_pool(settings.database_url, settings)
    first = Relay(own_pool, stalling, batch_max=20)
    running = asyncio.create_task(first.run())
    try:
        async with asyncio.timeout(10):
            await stalling.reached.wait()
        # The lease's holder, in this database (other sessions' relays hold theirs).
        holder = await pool.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = $1 AND objid = 0 AND objsubid = 2",
            LOCK_SPACE,
        )
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", holder)
        # Termination is asynchronous: the lease goes once the backend has gone.
        async with asyncio.timeout(10):
            for _ in range(500):
                if not await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", holder
                ):
                    break
                await asyncio.sleep(0.02)
        await drain(Relay(pool, broker))
        sent_meanwhile = [event_id for event_id, _ in await published(redis, stream)]
        assert_all_once_or_more_in_order(written, sent_meanwhile)
        stalling.let_go.set()
        async with asyncio.timeout(10):
            while first.published == 0:  # it comes back, and publishes what was written next
                await write_events(pool, 1, keys=1)
                await asyncio.sleep(0.1)
        assert not running.done()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await own_pool.close()
    sent = [event_id for event_id, _ in await published(redis, stream)]
    assert_all_once_or_more_in_order(written, sent)
    await redis.delete(stream)


async def test_a_broker_stopped_under_load_loses_no_event(
    private_broker: PrivateBroker,
    pool: asyncpg.Pool,
    settings: Settings,
    ledger: Ledger,
    open_wallet: OpenWallet,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The broker stopped for OUTAGE_S while transfers go on: each commits on time meanwhile;
    once the broker is back, a consumer group receives every committed transfer's event, at
    least once, in commit order per account."""
    # The back-off's cap (5 s) would only lengthen the wait for the broker's return.
    monkeypatch.setattr(relay, "RETRY_MAX_S", 0.5)
    monkeypatch.setattr(consumer, "RETRY_MAX_S", 0.5)
    events_settings = settings.model_copy(
        update={"events_url": private_broker.url, "events_redeliver_after_s": 2.0}
    )
    received: list[str] = []
    expected: set[str] = set()  # known once the load stops
    caught_up = asyncio.Event()

    async def record(events: Sequence[CloudEvent]) -> None:
        received.extend(
            e["data"]["transfer_id"]
            for e in events
            if e["type"] == "billfold.transfer.completed.v1"
        )
        if expected and expected <= set(received):
            caught_up.set()

    background = [
        asyncio.create_task(relay.serve(pool, events_settings, private_broker.url)),
        asyncio.create_task(
            consumer.serve(Consumer("faults", record), events_settings, private_broker.url)
        ),
    ]
    wallets = [await open_wallet(100_000) for _ in range(4)]
    committed: list[tuple[int, int]] = []  # (debit account, transfer id)
    down_latencies: list[float] = []
    down = asyncio.Event()
    stop = asyncio.Event()

    async def load(n: int) -> None:
        debit, credit = wallets[n], wallets[(n + 1) % len(wallets)]
        while not stop.is_set():
            started = time.monotonic()
            transfer = await ledger.move(
                "faults",
                str(uuid.uuid4()),
                debit_account_id=debit,
                credit_account_id=credit,
                amount_minor=1,
                currency="USD",
                code="p2p",
            )
            if down.is_set():
                down_latencies.append(time.monotonic() - started)
            committed.append((debit, transfer.id))
            await asyncio.sleep(0.02)

    loaders = [asyncio.create_task(load(n)) for n in range(len(wallets))]
    try:
        await asyncio.sleep(1.0)
        await private_broker.stop()
        down.set()
        await asyncio.sleep(OUTAGE_S)
        down.clear()
        await private_broker.start()
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*loaders)  # a transfer that failed fails the test here
        expected.update(str(transfer_id) for _, transfer_id in committed)
        await record([])  # it may all be in already
        async with asyncio.timeout(30):
            await caught_up.wait()
    finally:
        for task in [*loaders, *background]:
            await tasks.stop(task)
    assert len(down_latencies) >= OUTAGE_S * 10, "the transfers stopped while the broker was down"
    assert max(down_latencies) < SERVING_MAX_S
    for account in wallets:
        debits = [str(t) for debit, t in committed if debit == account]
        first = list(dict.fromkeys(t for t in received if t in set(debits)))
        assert first == debits, f"account {account}: events out of commit order"
