"""Reads on a streaming replica (platform.replica) with read-your-writes, on a real PostgreSQL 15
primary and a replica made with pg_basebackup (tests/topology/pg.py), started once for the
module: a person's own movement is in their history at once even with the replica's replay
paused (the primary answers after the bounded wait); others' reads go to the replica; resumed,
the replica answers again; stopped, the primary does. The ledger reconciles after each test.

Independent of the stack (embedded or the machine's services): the pair is this module's own,
and Redis is the session's, so CI runs it on both passes."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from billfold.config import Settings
from billfold.ledger.reconcile import reconcile
from billfold.ledger.store import WAL_POSITION
from billfold.platform.replica import READS, REPLAYED, REPLICA_COMMAND_TIMEOUT_S
from billfold.platform.security import issue_token
from billfold.risk import held
from billfold.wallet.history import HistoryQuery, read_history
from billfold.wallet.users import User
from billfold_bench.rules import LOAD_TEST_RULES
from tests.topology import pg
from tests.webhooks.conftest import until
from tests.world import SECRET_KEY, World, running_app

pytestmark = [
    pytest.mark.skipif(pg.available() is not None, reason=str(pg.available())),
    pytest.mark.usefixtures("reconciled"),
]
WAIT_MS = 100.0
BOUND_S = 20.0
LABELS = ("replica", "replica_waited", "primary_behind", "primary_down", "primary_unknown")


@pytest.fixture(scope="module")
def pair() -> Iterator[pg.Pair]:
    with pg.streaming_pair() as started:
        yield started


@pytest.fixture(scope="module")
async def world(pair: pg.Pair, isolated_settings: Settings) -> AsyncIterator[World]:
    """A node on the pair's primary (a database of its own, migrated as the node starts) with
    the replica for its reads, and a Redis database of the module's own."""
    admin = await asyncpg.connect(pair.primary.url("postgres"))
    try:
        await admin.execute("CREATE DATABASE billfold")
    finally:
        await admin.close()
    settings = isolated_settings.model_copy(
        update={
            "database_url": pair.primary.url("billfold"),
            "database_replica_url": pair.replica.url("billfold"),
        }
    )
    async with running_app(settings, risk_rules=LOAD_TEST_RULES, replica_wait_ms=WAIT_MS) as app:
        yield World(app)


@pytest.fixture
async def reconciled(world: World) -> AsyncIterator[None]:
    yield
    report = await reconcile(world.state.pool)
    assert report.ok, report.render()


def served() -> dict[str, float]:
    """How many reads each place has served so far (platform.replica's counter)."""
    return {label: READS.labels(label)._value.get() for label in LABELS}


def since(before: dict[str, float]) -> dict[str, float]:
    """The reads served since `before`, by place, leaving out places that served none."""
    now = served()
    return {label: now[label] - before[label] for label in LABELS if now[label] > before[label]}


async def history(world: World, user: User) -> list[str]:
    """The ids of the user's movements in their history, newest first, read as the API does."""
    page = await world.state.reads.run(user.account_id, read_history, user, HistoryQuery())
    return [row["id"] for row in page["transactions"]]


async def replica_history(world: World, user: User) -> list[str]:
    """The same, read on the replica whatever it holds."""
    page = await read_history(world.state.reads.replica, user, HistoryQuery())
    return [row["id"] for row in page["transactions"]]


async def caught_up(world: World) -> None:
    """Wait (bounded) until the replica has replayed everything the primary has written."""
    position = await world.state.pool.fetchval(WAL_POSITION)
    replica = world.state.reads.replica

    async def reached() -> bool:
        return bool(await replica.fetchval(REPLAYED) >= position)

    assert await until(reached, BOUND_S)


async def replay(world: World, paused: bool) -> None:
    """Pause or resume the replica's replay, and wait (bounded) until it is so."""
    replica = world.state.reads.replica
    await replica.execute(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()")

    async def done() -> bool:
        state = await replica.fetchval("SELECT pg_get_wal_replay_pause_state()")
        return bool(state == ("paused" if paused else "not paused"))

    assert await until(done, BOUND_S)


async def send(world: World, sender: User, recipient: User, amount: str) -> dict[str, Any]:
    return await world.send(sender, recipient, amount, key=uuid.uuid4().hex)


async def test_a_quiet_persons_history_is_read_on_the_replica(world: World) -> None:
    """A person whose last movement the replica has replayed is read there, and sees it."""
    ann, bob = await world.person(20_00), await world.person()
    sent = await send(world, ann, bob, "3.00")
    await caught_up(world)
    before = served()
    assert (await history(world, ann))[0] == sent["transfer_id"]
    assert since(before) == {"replica": 1}


async def test_own_movement_shows_at_once_with_the_replica_paused(world: World) -> None:
    """Replay paused: Ann's new transfer is not on the replica, yet her history (and Bob's, whose
    account it also moved) shows it, read from the primary after the bounded wait; Dee, who
    moved nothing since, is read on the replica. Resumed, Ann is read on the replica again."""
    ann, bob, dee = await world.person(20_00), await world.person(), await world.person(5_00)
    await caught_up(world)
    await replay(world, paused=True)
    try:
        sent = await send(world, ann, bob, "4.00")
        before, started = served(), time.monotonic()
        assert (await history(world, ann))[0] == sent["transfer_id"]
        assert time.monotonic() - started >= WAIT_MS / 1000
        assert (await history(world, bob))[0] == sent["transfer_id"]
        assert since(before) == {"primary_behind": 2}
        assert sent["transfer_id"] not in await replica_history(world, ann)

        before = served()
        assert len(await history(world, dee)) == 1  # her first money, replayed before the pause
        assert since(before) == {"replica": 1}
    finally:
        await replay(world, paused=False)
    before = served()
    assert (await history(world, ann))[0] == sent["transfer_id"]
    assert set(since(before)) <= {"replica", "replica_waited"}
    assert sum(since(before).values()) == 1


async def test_the_history_endpoint_shows_ones_own_transfer_with_the_replica_paused(
    world: World,
) -> None:
    """Over HTTP (GET /api/v1/wallet/{id}/transactions): replay paused, the caller's new
    transfer is in their history, read from the primary after the bounded wait."""
    ann, bob = await world.person(20_00), await world.person()
    await caught_up(world)
    token = issue_token(ann.id, SECRET_KEY, 600)
    transport = httpx.ASGITransport(app=world.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        await replay(world, paused=True)
        try:
            sent = await send(world, ann, bob, "2.00")
            before = served()
            found = await client.get(
                f"/api/v1/wallet/{ann.id}/transactions",
                headers={"Authorization": f"Bearer {token}"},
            )
        finally:
            await replay(world, paused=False)
    assert found.status_code == 200, found.text
    assert found.json()["transactions"][0]["id"] == sent["transfer_id"]
    assert since(before) == {"primary_behind": 1}


async def test_an_operators_list_is_read_on_the_replica_as_it_stands(world: World) -> None:
    """A read of no one's own movements (the AML candidates) goes to the replica at once."""
    before = served()
    assert isinstance(await world.state.reads.run(None, held.aml_candidates), list)
    assert since(before) == {"replica": 1}


async def test_with_the_replica_down_the_primary_answers(world: World, pair: pg.Pair) -> None:
    """Replica stopped: reads go to the primary, correct, a person's own new movement too; the
    replica started again, reads go back to it once it is left alone no longer."""
    ann, bob = await world.person(20_00), await world.person()
    pair.replica.stop()
    try:
        sent = await send(world, ann, bob, "5.00")
        before = served()
        assert (await history(world, ann))[0] == sent["transfer_id"]
        assert (await history(world, bob))[0] == sent["transfer_id"]
        assert since(before) == {"primary_down": 2}
    finally:
        pair.replica.start()
    world.state.reads.left_alone_until = 0.0  # as DOWN_FOR_S later
    await caught_up(world)
    before = served()
    assert (await history(world, ann))[0] == sent["transfer_id"]
    assert since(before) == {"replica": 1}


async def test_a_replica_that_hangs_is_left_for_the_primary_within_a_bound(
    world: World, pair: pg.Pair
) -> None:
    """Replica frozen (it accepts nothing and refuses nothing): a read of a person's own new
    movement, waiting for the replica's position, and a read that goes straight to it, both come
    back from the primary within the replica's command timeout, and the reads after them go to
    the primary at once (the replica is left alone)."""
    ann, bob = await world.person(20_00), await world.person()
    sent = await send(world, ann, bob, "5.00")
    await caught_up(world)
    world.state.reads.left_alone_until = 0.0
    with pair.replica.frozen():
        other = await world.person()
        started = time.monotonic()
        # ann's own write was remembered: her read waits for the replica's position.
        assert (await history(world, ann))[0] == sent["transfer_id"]
        assert time.monotonic() - started < 3 * REPLICA_COMMAND_TIMEOUT_S + 1
        before = served()
        started = time.monotonic()
        assert await history(world, other) == []
        assert time.monotonic() - started < 1.0
        assert since(before) == {"primary_down": 1}
    world.state.reads.left_alone_until = 0.0  # as DOWN_FOR_S later
    await caught_up(world)
