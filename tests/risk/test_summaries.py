"""The risk summaries (migration 0020) answer the past query exactly as the rows they summarise.

The triggers on risk_assessments keep, per user and per pair, what the past query used to count
row by row. These tests hold them to the rows: after a generated history with declines, held
movements declined later and refused ones, the query from the summaries gives the row the scans
give; the summaries are those the migration's backfill computes from the rows; and concurrent
movements of one user, one at a time or in batches, are all counted, without deadlocks.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

from billfold.risk import assessments, serving, synth
from billfold.risk.engine import RulesEngine, remember_places
from billfold.risk.history import ip_prefix
from billfold.risk.model import Scorer
from billfold.risk.rules import Action, RiskRules, Verdict

MIGRATION = Path(__file__).parents[2] / "migrations" / "0020_risk_summaries.sql"
# The summaries as the query reads them, and as if each held a movement later than any: every
# answer then comes from the rows, as before the summaries.
SCANNED = (
    serving.PAST.replace(
        "LEFT JOIN risk_user_summaries s ON",
        "LEFT JOIN (SELECT user_id, movements, 'infinity'::timestamptz AS last_at, last_device_id,"
        " last_country, last_out_at, last_add_at, last_add_amount_minor"
        " FROM risk_user_summaries) s ON",
    )
    .replace(
        "LEFT JOIN risk_pair_summaries pm ON",
        "LEFT JOIN (SELECT user_id, counterparty_id, payments, 'infinity'::timestamptz AS last_at"
        " FROM risk_pair_summaries) pm ON",
    )
    .replace(
        "LEFT JOIN risk_pair_summaries pt ON",
        "LEFT JOIN (SELECT user_id, counterparty_id, 'infinity'::timestamptz AS last_at,"
        " last_amount_minor FROM risk_pair_summaries) pt ON",
    )
)
_AREA_CODES = itertools.count(300)


async def _people(pool: asyncpg.Pool, count: int) -> list[uuid.UUID]:
    tag, area = uuid.uuid4().hex[:8], next(_AREA_CODES)
    return [
        await pool.fetchval(
            """INSERT INTO users (username, email, phone, password_hash, created_at)
               VALUES ($1, $1 || '@summaries.test', $2, 'x', now() - interval '60 days')
               RETURNING id""",
            f"m{tag}{n}",
            f"+1{area}{n:07d}",
        )
        for n in range(count)
    ]


async def _sign_up(pool: asyncpg.Pool, dataset: synth.Dataset) -> dict[int, str]:
    ids: dict[int, str] = {}
    tag, area = uuid.uuid4().hex[:6], next(_AREA_CODES)
    for n, profile in dataset.users.items():
        ids[n] = await pool.fetchval(
            """INSERT INTO users (username, email, phone, password_hash, created_at)
               VALUES ($1, $1 || '@summaries.test', $2, 'x', $3) RETURNING id::text""",
            f"g{tag}_{n}",
            f"+1{area}{n:07d}",
            profile.signup_at,
        )
        for device in profile.devices or (None,):
            await remember_places(
                pool, ids[n], device, profile.home_country, None, profile.signup_at
            )
    return ids


def _verdict(n: int) -> Verdict:
    """Mostly allowed; some declined, some held (a held one is history until declined)."""
    if n % 9 == 4:
        return Verdict(Action.DECLINE, 0.9, ("test",))
    if n % 7 == 3:
        return Verdict(Action.REVIEW, 0.5, ("test",))
    return Verdict(Action.ALLOW, 0.0, ())


async def _summaries(pool: asyncpg.Pool, table: str, users: list[uuid.UUID]) -> list[Any]:
    rows = await pool.fetch(
        f"SELECT * FROM {table} WHERE user_id = ANY($1::uuid[]) ORDER BY 1, 2", users
    )
    return [tuple(row.values()) for row in rows]


async def test_the_summaries_answer_as_the_rows_do(pool: asyncpg.Pool, redis: Redis) -> None:
    """A fortnight of movements, a ninth declined, a seventh held and every other held one
    declined later, some refused after scoring: at the end, and at times between, the past
    query reads from the summaries the row that the scans of the rows give; and the summaries
    the triggers kept are those the migration's backfill computes from the rows."""
    engine = RulesEngine(pool, redis, RiskRules(), Scorer.load())
    dataset = synth.generate(users=200, days=14, seed=11)
    ids = await _sign_up(pool, dataset)
    held: list[int] = []
    for n, event in enumerate(dataset.events):
        movement = serving.movement_of(event, ids, f"summary-{n}")
        known = await engine.prepare(movement, event.ts)
        recorded = await engine.record(movement, event.ts, known, _verdict(n))
        await engine.log.flush()
        if recorded.assessment_id is not None and _verdict(n).action is Action.REVIEW:
            held.append(recorded.assessment_id)
        elif recorded.assessment_id is not None and n % 13 == 0:
            await assessments.never_moved(pool, recorded.assessment_id)  # refused: no history
    for assessment_id in held[::2]:
        await assessments.never_moved(pool, assessment_id)
    end = dataset.events[-1].ts + timedelta(minutes=1)
    probes = [(e, end) for e in dataset.events[::5]]
    probes += [(e, e.ts + timedelta(seconds=30)) for e in dataset.events[::17]]
    for event, at in probes:
        movement = serving.movement_of(event, ids, "probe")
        arguments = (
            uuid.UUID(movement.user_id),
            uuid.UUID(movement.counterparty_id) if movement.counterparty_id else None,
            movement.device_id,
            at,
            ip_prefix(movement.ip) if movement.ip else None,
        )
        summarised = await pool.fetchrow(serving.PAST, *arguments)
        scanned = await pool.fetchrow(SCANNED, *arguments)
        assert dict(summarised) == dict(scanned), (event, at)

    users = [uuid.UUID(i) for i in ids.values()]
    tables = ("risk_user_summaries", "risk_pair_summaries")
    kept = [await _summaries(pool, table, users) for table in tables]
    assert all(kept)
    # The migration's backfill, for these users, in a transaction rolled back.
    backfill = MIGRATION.read_text().split("-- The summaries of the assessments already stored.")
    mine = "{" + ",".join(str(u) for u in users) + "}"
    async with pool.acquire() as conn:
        rebuilding = conn.transaction()
        await rebuilding.start()
        for table in tables:
            await conn.execute(f"DELETE FROM {table} WHERE user_id = ANY($1::uuid[])", users)
        await conn.execute(
            backfill[1].replace(
                "FROM risk_assessments WHERE",
                f"FROM risk_assessments WHERE user_id = ANY('{mine}'::uuid[]) AND",
            )
        )
        rebuilt = [await _summaries(conn, table, users) for table in tables]  # type: ignore[arg-type]
        await rebuilding.rollback()
    assert rebuilt == kept


def _row(user: uuid.UUID, to: uuid.UUID, at: datetime, amount: int) -> list[Any]:
    """RECORD's parameters for an allowed P2P transfer's assessment."""
    ref = f"c-{uuid.uuid4().hex}"
    context = ["phone", "US", None, None, None, None, None, None]
    return [user, "p2p", ref, to, amount, 0.0, "allow", at, *context, [], []]


async def _summary(pool: asyncpg.Pool, me: uuid.UUID, them: uuid.UUID) -> tuple[Any, ...]:
    row = await pool.fetchrow(
        """SELECT s.movements, s.last_at, p.payments, p.last_at, p.last_amount_minor
             FROM risk_user_summaries s
             JOIN risk_pair_summaries p ON p.user_id = s.user_id AND p.counterparty_id = $2
            WHERE s.user_id = $1""",
        me,
        them,
    )
    return tuple(row.values())


async def test_two_movements_of_one_user_at_once_are_both_counted(pool: asyncpg.Pool) -> None:
    """The second of two concurrent transactions that write one user's assessments waits for
    the first's summary rows and adds to what it wrote: no movement is lost, and the last is
    the latest in time, whichever commits first."""
    me, them = await _people(pool, 2)
    now = datetime.now(UTC)
    first, second = await pool.acquire(), await pool.acquire()
    try:
        one, other = first.transaction(), second.transaction()
        await one.start()
        await first.execute(assessments.RECORD, *_row(me, them, now, 100))
        await other.start()
        waiting = asyncio.ensure_future(
            second.execute(assessments.RECORD, *_row(me, them, now - timedelta(seconds=5), 200))
        )
        await asyncio.sleep(0.3)
        assert not waiting.done()  # on the summary row the first transaction holds
        await one.commit()
        await waiting
        await other.commit()
    finally:
        await pool.release(first)
        await pool.release(second)
    assert await _summary(pool, me, them) == (2, now, 2, now, 100)


async def test_concurrent_batches_of_the_same_users_all_count_and_do_not_deadlock(
    pool: asyncpg.Pool,
) -> None:
    """Single assessments and batches (as the assessment log and the ledger write them), the
    batches naming the same users in opposite orders, all at once: every one is counted, and
    none fails on a deadlock (the triggers lock summaries in key order)."""
    people = await _people(pool, 4)
    now = datetime.now(UTC)
    moments = iter(range(10_000))

    def row(user: uuid.UUID, to: uuid.UUID) -> list[Any]:
        return _row(user, to, now - timedelta(milliseconds=next(moments)), 100)

    async def batch(order: list[uuid.UUID]) -> None:
        rows = [row(user, order[(n + 1) % len(order)]) for n, user in enumerate(order)]
        columns = [list(column) for column in zip(*(r[:16] for r in rows), strict=True)]
        reasons = ["" for _ in rows]
        await pool.execute(assessments.RECORD_MANY, *columns, reasons, reasons)

    forward, backward = people, people[::-1]
    work = [batch(forward if n % 2 else backward) for n in range(30)]
    work += [pool.execute(assessments.RECORD, *row(people[0], people[1])) for _ in range(30)]
    await asyncio.gather(*work)
    counts = dict(
        await pool.fetch(
            "SELECT user_id, movements FROM risk_user_summaries WHERE user_id = ANY($1::uuid[])",
            people,
        )
    )
    assert counts == {people[0]: 60, people[1]: 30, people[2]: 30, people[3]: 30}
    stored = await pool.fetchval(
        "SELECT count(*) FROM risk_assessments WHERE user_id = ANY($1::uuid[])", people
    )
    assert stored == 150
