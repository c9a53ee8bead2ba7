"""Risk assessments, webhook deliveries and their attempts partitioned by month (migration
0036): rows land in their month, the keys and references hold as before, detach keeps the
months still needed, and the reads by time name only their months."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import asyncpg
import pytest

from billfold.cli import detach_guards
from billfold.config import Settings
from billfold.platform.partitions import detach, ensure, parse_month
from billfold.risk import listing
from billfold.risk.past_sql import PAST
from billfold.webhooks.fanout import fan_out
from billfold_bench.rules import LOAD_TEST_RULES
from tests.webhooks.conftest import register
from tests.webhooks.test_fanout import NOWHERE, cloudevent
from tests.world import World, running_app

ASSESS = """
INSERT INTO risk_assessments (user_id, kind, ref, counterparty_id, amount_minor, score, action,
                              reasons, created_at)
VALUES ($1, 'p2p', $2, $3, 100, 0.1, $4, '{}', $5) RETURNING id, created_at
"""
HOLD = """
INSERT INTO held_transfers (hold_id, sender_id, recipient_id, amount_minor, status,
                            assessment_id, assessment_at)
VALUES ($1, $2, $3, 100, 'PENDING_REVIEW', $4, $5)
"""


@pytest.fixture(scope="module")
async def world(settings: Settings) -> AsyncIterator[World]:
    async with running_app(settings, risk_rules=LOAD_TEST_RULES) as app:
        yield World(app)


def at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 12, tzinfo=UTC)


async def _where(pool: asyncpg.Pool, table: str, key: str, value: object) -> list[str]:
    rows = await pool.fetch(f"SELECT tableoid::regclass::text FROM {table} WHERE {key} = $1", value)
    return [r[0] for r in rows]


async def _plan(pool: asyncpg.Pool, sql: str, *args: object) -> str:
    return "\n".join(r[0] for r in await pool.fetch(f"EXPLAIN {sql}", *args))


async def test_rows_land_in_their_month_and_the_keys_hold(world: World) -> None:
    """An assessment goes to its month's partition, a delivery and its attempt to the event's
    month's; a held transfer refers to its assessment by (id, time), its time filled in from the
    id if not given, and a wrong pair is refused."""
    pool = world.state.pool
    await ensure(pool, 2, today=date(2019, 1, 1))
    alice, bob = await world.person(), await world.person()
    row = await pool.fetchrow(ASSESS, alice.id, "r1", bob.id, "review", at(2019, 2, 10))
    assert await _where(pool, "risk_assessments", "id", row["id"]) == ["risk_assessments_p2019_02"]
    hold = uuid.uuid4().int >> 72
    await pool.execute(HOLD, hold, alice.id, bob.id, row["id"], None)
    stored = await pool.fetchval(
        "SELECT assessment_at FROM held_transfers WHERE hold_id = $1", hold
    )
    assert stored == row["created_at"]
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute(HOLD, hold + 1, alice.id, bob.id, row["id"], at(2019, 2, 11))
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="does not exist"):
        await pool.execute(HOLD, hold + 2, alice.id, bob.id, 2**62, None)
    # Migration 0012's mark reaches the assessment by its key.
    await pool.execute("UPDATE held_transfers SET status = 'DECLINED' WHERE hold_id = $1", hold)
    assert await pool.fetchval(
        "SELECT declined_later FROM risk_assessments WHERE id = $1", row["id"]
    )

    endpoint = await register(world, alice.id, NOWHERE)
    await pool.execute(
        "UPDATE webhook_endpoints SET created_at = $2 WHERE id = $1",
        uuid.UUID(endpoint["endpoint_id"]),
        at(2019, 1, 1),
    )
    event = cloudevent("user.frozen", {"user_id": str(alice.id)}, at(2019, 3, 5))
    assert await fan_out(pool, [event]) == 1
    delivery = await pool.fetchrow(
        "SELECT id, event_time FROM webhook_deliveries WHERE event_id = $1",
        uuid.UUID(event["id"]),
    )
    assert delivery["event_time"] == at(2019, 3, 5)
    assert await _where(pool, "webhook_deliveries", "id", delivery["id"]) == [
        "webhook_deliveries_p2019_03"
    ]
    await pool.execute(
        """INSERT INTO webhook_attempts (delivery_id, event_time, attempted_at, error,
               duration_ms) VALUES ($1, $2, now(), 'refused', 1)""",
        delivery["id"],
        delivery["event_time"],
    )
    # (The app's dispatcher may have tried it too: every attempt is in that month.)
    assert set(await _where(pool, "webhook_attempts", "delivery_id", delivery["id"])) == {
        "webhook_attempts_p2019_03"
    }
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute(
            """INSERT INTO webhook_attempts (delivery_id, event_time, attempted_at, error,
                   duration_ms) VALUES ($1, $2, now(), 'refused', 1)""",
            delivery["id"],
            at(2019, 3, 6),
        )


async def test_an_event_fanned_out_at_once_by_several_consumers_is_one_delivery(
    world: World,
) -> None:
    """Four fan-outs of the same events at once (redeliveries to several nodes) make one
    delivery per endpoint and event: the unique key with the event's time refuses the rest."""
    pool = world.state.pool
    owner = await world.person()
    await register(world, owner.id, NOWHERE)
    await register(world, owner.id, NOWHERE)
    events = [cloudevent("user.frozen", {"user_id": str(owner.id)}) for _ in range(20)]
    made = await asyncio.gather(*(fan_out(pool, events) for _ in range(4)))
    assert sum(made) == 40
    count = await pool.fetchval(
        "SELECT count(*) FROM webhook_deliveries WHERE event_id = ANY($1::uuid[])",
        [uuid.UUID(e["id"]) for e in events],
    )
    assert count == 40


async def test_detach_keeps_months_still_needed(world: World) -> None:
    """Months whose assessments no movement under review needs and whose deliveries were all
    sent leave, the attempts' before their deliveries'; a month with the assessment of a held
    transfer still under review, or with a delivery still to be sent, stays."""
    pool = world.state.pool
    await ensure(pool, 2, today=date(2018, 1, 1))
    alice, bob = await world.person(), await world.person()
    await pool.fetchrow(ASSESS, alice.id, "old", bob.id, "allow", at(2018, 1, 10))
    # January's held transfer was settled: its row stays, its month of assessments may go.
    settled = await pool.fetchrow(ASSESS, alice.id, "settled", bob.id, "review", at(2018, 1, 12))
    settled_hold = uuid.uuid4().int >> 72
    await pool.execute(HOLD, settled_hold, alice.id, bob.id, settled["id"], None)
    await pool.execute(
        "UPDATE held_transfers SET status = 'COMPLETED' WHERE hold_id = $1", settled_hold
    )
    held = await pool.fetchrow(ASSESS, alice.id, "held", bob.id, "review", at(2018, 2, 10))
    await pool.execute(HOLD, uuid.uuid4().int >> 72, alice.id, bob.id, held["id"], None)
    endpoint = await register(world, alice.id, NOWHERE)
    await pool.execute(
        "UPDATE webhook_endpoints SET created_at = $2 WHERE id = $1",
        uuid.UUID(endpoint["endpoint_id"]),
        at(2017, 1, 1),
    )
    sent = cloudevent("user.frozen", {"user_id": str(alice.id)}, at(2018, 1, 20))
    waiting = cloudevent("user.frozen", {"user_id": str(alice.id)}, at(2018, 2, 20))
    assert await fan_out(pool, [sent, waiting]) == 2
    await pool.execute(
        """UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(),
                  next_attempt_at = NULL WHERE event_id = $1""",
        uuid.UUID(sent["id"]),
    )
    await pool.execute(
        """INSERT INTO webhook_attempts (delivery_id, event_time, attempted_at, status_code,
               duration_ms)
           SELECT id, event_time, now(), 200, 1 FROM webhook_deliveries
            WHERE event_id = ANY($1::uuid[])""",
        [uuid.UUID(sent["id"]), uuid.UUID(waiting["id"])],
    )
    lines: list[str] = []
    detached, kept = await detach(pool, parse_month("2018-03"), detach_guards(), lines.append)
    tables = ("risk_assessments", "webhook_attempts", "webhook_deliveries")
    assert sorted(n for n in detached if n.endswith("2018_01") and n.startswith(tables)) == [
        f"{t}_p2018_01" for t in tables
    ]
    assert sorted(n for n in kept if n.endswith("2018_02") and n.startswith(tables)) == [
        f"{t}_p2018_02" for t in tables
    ]
    assert detached.index("webhook_attempts_p2018_01") < detached.index(
        "webhook_deliveries_p2018_01"
    )
    assert await pool.fetchval("SELECT count(*) FROM archive.webhook_attempts_p2018_01") >= 1
    assert (
        await pool.fetchval("SELECT count(*) FROM risk_assessments WHERE id = $1", held["id"]) == 1
    )
    assert (
        await pool.fetchval(
            "SELECT assessment_at FROM held_transfers WHERE hold_id = $1", settled_hold
        )
        == settled["created_at"]
    )


async def test_the_reads_by_time_name_only_their_months(world: World) -> None:
    """The past query (features) for a movement in April names no later month, and its 30-day
    window the two months it covers; the operators' listing over a range names its months."""
    pool = world.state.pool
    await ensure(pool, 5, today=date(2036, 1, 1))
    alice, bob = await world.person(), await world.person()
    past = await _plan(pool, PAST, alice.id, bob.id, None, at(2036, 4, 10), None, None)
    assert "risk_assessments_p2036_04" in past and "risk_assessments_p2036_03" in past
    for later in ("2036_05", "2036_06"):
        assert f"risk_assessments_p{later}" not in past
    window = await _plan(
        pool,
        """SELECT * FROM risk_assessments WHERE user_id = $1 AND NOT declined_later
              AND created_at > $2::timestamptz - interval '30 days' AND created_at <= $2
            ORDER BY created_at DESC LIMIT 256""",
        alice.id,
        at(2036, 4, 10),
    )
    named = {m for m in ("01", "02", "03", "04", "05") if f"risk_assessments_p2036_{m}" in window}
    assert named == {"03", "04"}, window
    assert "risk_assessments_default" not in window
    query = listing.AssessmentQuery(start=at(2036, 2, 3), end=at(2036, 2, 25), verdict="review")
    sql, args = listing._statement(query, None)
    page = await _plan(pool, sql, *args)
    assert "risk_assessments_p2036_02" in page
    assert all(f"risk_assessments_p2036_{m}" not in page for m in ("01", "03", "04"))
    assert "risk_assessments_default" not in page
