"""The model's features online equal the features it was trained on.

A generated history (every fraud pattern in it) is replayed twice: offline through
`features.replay`, as training does, and online through the risk engine against PostgreSQL and
Redis, each movement prepared at its own time and then recorded as the engine records it. Every
feature of every movement must agree.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from redis.asyncio import Redis

from billfold.config import Settings
from billfold.platform.db import create_pool
from billfold.platform.migrate import apply_migrations
from billfold.risk import serving, velocity
from billfold.risk.engine import PAST_CONNECTIONS, PAST_POOL, RulesEngine
from billfold.risk.features import FEATURE_INDEX, FEATURE_NAMES, replay
from billfold.risk.gate import Action, Movement, Verdict
from billfold.risk.history import address_of, ip_prefix
from billfold.risk.model import Scorer
from billfold.risk.places import remember_places
from billfold.risk.rules import RiskRules
from billfold.risk.serving import Request
from billfold.risk.training import synth
from billfold.wallet.standing import engine_freezer

# Online, a user has a verified bank account when one is verified now; the generator knows only
# whether it was at signup. The rest must match exactly.
NOT_COMPARED = {"has_verified_bank"}
# Phone numbers of the users a test signs up: an area code of its own for each (a random one
# collided now and then), then the user's number.
_AREA_CODES = itertools.count(100)


@pytest.fixture
async def engine(pool: asyncpg.Pool, redis: Redis) -> AsyncIterator[RulesEngine]:
    engine = RulesEngine(pool, redis, RiskRules(), Scorer.load(), freeze=engine_freezer(pool))
    yield engine
    await engine.log.flush()


@pytest.fixture(params=["planned per batch", "generic plans"])
async def batch_engine(
    request: pytest.FixtureRequest, pool: asyncpg.Pool, redis: Redis, settings: Settings
) -> AsyncIterator[RulesEngine]:
    """The engine as the CLI makes it, and as the service makes it (its past queries on
    connections with generic plans)."""
    generic = request.param == "generic plans"
    assert settings.database_url is not None
    pasts = await create_pool(settings.database_url, settings, **PAST_POOL) if generic else None
    engine = RulesEngine(
        pool, redis, RiskRules(), Scorer.load(), freeze=engine_freezer(pool), pasts=pasts
    )
    yield engine
    await engine.log.flush()
    if pasts is not None:
        await pasts.close()


async def _sign_up(pool: asyncpg.Pool, dataset: synth.Dataset) -> dict[int, str]:
    """A row in users for every generated user, signed up when the generator says, with the
    devices and home country they signed up from."""
    ids: dict[int, str] = {}
    tag = uuid.uuid4().hex[:6]
    area = next(_AREA_CODES)
    for n, profile in dataset.users.items():
        ids[n] = await pool.fetchval(
            """INSERT INTO users (username, email, phone, password_hash, created_at)
               VALUES ($1, $2, $3, 'x', $4) RETURNING id::text""",
            f"s{tag}_{n}",
            f"s{tag}_{n}@serving.test",
            f"+1{area}{n:07d}",
            profile.signup_at,
        )
        for device in profile.devices or (None,):
            await remember_places(
                pool, ids[n], device, profile.home_country, None, profile.signup_at
            )
    return ids


async def _people(pool: asyncpg.Pool, count: int, days_ago: int) -> list[str]:
    """The ids of `count` new users, signed up `days_ago` days ago."""
    tag = uuid.uuid4().hex[:8]
    area = next(_AREA_CODES)
    return [
        await pool.fetchval(
            """INSERT INTO users (username, email, phone, password_hash, created_at)
               VALUES ($1, $1 || '@people.test', $2, 'x', now() - make_interval(days => $3))
               RETURNING id::text""",
            f"p{tag}{n}",
            f"+1{area}{n:07d}",
            days_ago,
        )
        for n in range(count)
    ]


def _same(online: float, offline: float) -> bool:
    if math.isnan(offline):
        return math.isnan(online)
    return math.isclose(online, offline, rel_tol=1e-9, abs_tol=1e-6)


async def test_online_features_equal_the_training_features(
    pool: asyncpg.Pool, engine: RulesEngine
) -> None:
    # Seed 8: every pattern, and rings young enough in the window for the address features.
    dataset = synth.generate(users=200, days=14, seed=8)
    assert len({e.pattern for e in dataset.events if e.label}) >= 8
    ids = await _sign_up(pool, dataset)
    offline = list(replay(dataset.users.values(), dataset.events))
    ring = [row for row in offline if row[FEATURE_INDEX["address_counterparties"]] > 0]
    assert len(ring) >= 20
    allowed = Verdict(Action.ALLOW, 0.0, ())
    mismatches: list[str] = []
    for n, (event, expected) in enumerate(zip(dataset.events, offline, strict=True)):
        movement = serving.movement_of(event, ids, f"serving-{n}")
        known = await engine.prepare(movement, event.ts)
        for name, online, want in zip(FEATURE_NAMES, known.features, expected, strict=True):
            if name not in NOT_COMPARED and not _same(online, want):
                mismatches.append(f"event {n} ({event.kind}) {name}: online {online}, {want}")
        await engine.record(movement, event.ts, known, allowed)
        await engine.log.flush()
    assert mismatches == [], f"{len(mismatches)} differ; first: {mismatches[:10]}"


async def test_the_pasts_of_concurrent_movements_are_read_together_as_one_by_one(
    pool: asyncpg.Pool, batch_engine: RulesEngine
) -> None:
    """The past queries of concurrent movements go out as one statement (PAST_MANY); each gets
    the row PAST gives it alone, and a user who does not exist fails alone."""
    engine = batch_engine
    dataset = synth.generate(users=200, days=14, seed=9)
    ids = await _sign_up(pool, dataset)
    for n, event in enumerate(dataset.events[:300]):
        movement = serving.movement_of(event, ids, f"batch-{n}")
        await engine.record(
            movement,
            event.ts,
            await engine.prepare(movement, event.ts),
            Verdict(Action.ALLOW, 0, ()),
        )
    await engine.log.flush()
    at = dataset.events[299].ts + timedelta(minutes=1)
    movements = [
        serving.movement_of(e, ids, f"later-{n}") for n, e in enumerate(dataset.events[:40])
    ]
    ghost = Movement("p2p", str(uuid.uuid4()), None, 100, "USD", ref="ghost")
    together = await asyncio.gather(
        *(engine.past(m, at) for m in [*movements, ghost]), return_exceptions=True
    )
    assert isinstance(together[-1], LookupError)
    for movement, (past, _, _) in zip(movements, together[:-1], strict=True):
        alone = await pool.fetchrow(
            serving.PAST,
            uuid.UUID(movement.user_id),
            uuid.UUID(movement.counterparty_id) if movement.counterparty_id else None,
            movement.device_id,
            at,
            ip_prefix(movement.ip) if movement.ip else None,
            address_of(movement.ip),
        )
        assert {k: v for k, v in past.row.items() if k != "n"} == dict(alone)


async def test_the_last_movement_of_each_kind_is_found_beyond_the_recent_rows(
    pool: asyncpg.Pool, engine: RulesEngine
) -> None:
    """The last add-funds, outgoing movement and incoming transfer come from the rows the query
    reads anyway (30 days of events, 7 days received) when those hold one, and from further
    back when they don't; the features are the same either way."""
    dataset = synth.generate(users=200, days=14, seed=4)
    ids = await _sign_up(pool, dataset)
    me, them = ids[0], ids[1]
    start = max(profile.signup_at for profile in dataset.users.values()) + timedelta(days=1)
    allowed = Verdict(Action.ALLOW, 0.0, ())

    async def happen(movement: Movement, days: float) -> None:
        at = start + timedelta(days=days)
        await engine.record(movement, at, await engine.prepare(movement, at), allowed)
        await engine.log.flush()

    async def features_at(days: float) -> dict[str, float]:
        probe = Movement("p2p", me, them, 100, "USD", ref=f"probe-{days}")
        known = await engine.prepare(probe, start + timedelta(days=days))
        return dict(zip(FEATURE_NAMES, known.features, strict=True))

    await happen(Movement("add_funds", me, None, 25_000, "USD", ref="add-1", rail="ach"), 0)
    await happen(Movement("p2p", me, them, 1_000, "USD", ref="out-1"), 1)
    await happen(Movement("p2p", them, me, 2_000, "USD", ref="in-1"), 2)
    # 40 days on, nothing recent: all three from further back.
    old = await features_at(40)
    assert old["hours_since_last_add"] == pytest.approx(40 * 24)
    assert old["last_add_usd"] == 250.0
    assert old["hours_since_last_out"] == pytest.approx(39 * 24)
    assert old["hours_since_last_in"] == pytest.approx(38 * 24)
    # A recent add-funds and incoming transfer: those from the recent rows; the last outgoing
    # movement, older than what was read, still from further back.
    await happen(Movement("add_funds", me, None, 7_500, "USD", ref="add-2", rail="ach"), 40)
    await happen(Movement("p2p", them, me, 3_000, "USD", ref="in-2"), 40.5)
    recent = await features_at(41)
    assert recent["hours_since_last_add"] == pytest.approx(24)
    assert recent["last_add_usd"] == 75.0
    assert recent["hours_since_last_in"] == pytest.approx(12)
    assert recent["hours_since_last_out"] == pytest.approx(40 * 24)
    # And an outgoing one among the recent rows.
    await happen(Movement("p2p", me, them, 500, "USD", ref="out-2"), 41.25)
    assert (await features_at(41.5))["hours_since_last_out"] == pytest.approx(6)


async def test_declined_movements_are_not_history(pool: asyncpg.Pool, engine: RulesEngine) -> None:
    """Money that never moved does not count as the user's past."""
    dataset = synth.generate(users=200, days=14, seed=6)
    ids = await _sign_up(pool, dataset)
    first = next(e for e in dataset.events if e.kind == "p2p")
    at = first.ts
    movement = Movement(
        "p2p", ids[first.user_id], ids[first.counterparty_id or 0], 5_000, "USD", ref="d-1"
    )
    known = await engine.prepare(movement, at)
    await engine.record(movement, at, known, Verdict(Action.DECLINE, 0.0, ("test",)))
    await engine.log.flush()
    later = await engine.prepare(
        Movement("p2p", movement.user_id, movement.counterparty_id, 5_000, "USD", ref="d-2"),
        at + timedelta(seconds=1),
    )
    named = dict(zip(FEATURE_NAMES, later.features, strict=True))
    assert named["is_new_recipient"] == 1.0
    assert named["out_count_1m"] == 0.0


async def test_a_held_movement_declined_later_is_not_history(
    pool: asyncpg.Pool, engine: RulesEngine
) -> None:
    """Held for a PIN, then declined (three wrong PINs): the trigger on held_transfers marks the
    assessment, and the next movement's past does not count it; while it was pending, it did."""
    dataset = synth.generate(users=200, days=14, seed=8)
    ids = await _sign_up(pool, dataset)
    first = next(e for e in dataset.events if e.kind == "p2p")
    sender, payee = ids[first.user_id], ids[first.counterparty_id or 0]
    held = Movement("p2p", sender, payee, 9_000, "USD", ref="h-1")
    known = await engine.prepare(held, first.ts)
    recorded = await engine.record(
        held, first.ts, known, Verdict(Action.STEP_UP, 0.0, ("a new device",))
    )
    assessment_id = recorded.assessment_id
    assert assessment_id is not None
    await pool.execute(
        """INSERT INTO held_transfers (hold_id, sender_id, recipient_id, amount_minor, status,
                                       assessment_id)
           VALUES ($1, $2, $3, 9000, 'PENDING_VERIFICATION', $4)""",
        -assessment_id,
        uuid.UUID(sender),
        uuid.UUID(payee),
        assessment_id,
    )

    async def times_paid(at_seconds: int) -> float:
        later = Movement("p2p", sender, payee, 1_000, "USD", ref=f"h-{at_seconds}")
        known = await engine.prepare(later, first.ts + timedelta(seconds=at_seconds))
        return dict(zip(FEATURE_NAMES, known.features, strict=True))["times_paid_recipient"]

    assert await times_paid(1) == 1.0
    await pool.execute(
        "UPDATE held_transfers SET status = 'DECLINED' WHERE hold_id = $1", -assessment_id
    )
    assert await times_paid(2) == 0.0


async def test_an_allowed_funding_movement_refreshes_an_hour_old_place_with_the_next_batch(
    pool: asyncpg.Pool, engine: RulesEngine
) -> None:
    """An add-funds from a device last seen two hours ago: its assessment is written at once
    (the next movement's rules read it), and the device's last-seen time with the log's next
    batch, as an allowed P2P transfer's is."""
    dataset = synth.generate(users=200, days=14, seed=9)
    ids = await _sign_up(pool, dataset)
    first = next(e for e in dataset.events if e.kind == "add_funds")
    user, at = ids[first.user_id], first.ts
    await remember_places(pool, user, "old-tablet", "US", None, at - timedelta(hours=2))
    movement = Movement(
        "add_funds", user, None, 5_000, "USD", "f-1", "old-tablet", "US", None, "ach"
    )
    known = await engine.prepare(movement, at)
    assert known.past.places_to_remember(known.request) == "later"
    recorded = await engine.record(movement, at, known, Verdict(Action.ALLOW, 0.0, ()))
    assert recorded.assessment_id is not None
    assert (
        await pool.fetchval(
            "SELECT kind FROM risk_assessments WHERE id = $1", recorded.assessment_id
        )
        == "add_funds"
    )
    await engine.log.flush()
    seen = await pool.fetchval(
        """SELECT last_seen_at FROM user_devices
            WHERE user_id = $1 AND device_id = 'old-tablet'""",
        uuid.UUID(user),
    )
    assert seen == at


def _request(at: float, device: str = "phone", country: str = "US", ip: str = "") -> Request:
    return Request(
        ts=datetime.fromtimestamp(at, UTC),
        kind="p2p",
        amount_minor=1_000,
        rail=None,
        device_id=device,
        country=country,
        ip=ip,
        counterparty_id=None,
    )


def test_what_an_allowed_movement_writes_of_where_it_came_from() -> None:
    """A new device or country at once; a new address block or address, an hour-old place, or a
    return to an earlier country in the next batch; a place seen minutes ago not at all."""
    now = 1_800_000_000.0
    past = serving.Past.of(
        {
            "events": [],
            "devices": [["phone", now - 86_400, now - 60]],
            "countries": [["US", now - 7_200], ["FR", now - 600]],
            "network_seen": now - 60,
            "address_seen": now - 60,
            "signup": now - 86_400,
        }
    )
    assert past.places_to_remember(_request(now, device="tablet", country="FR")) == "new"
    assert past.places_to_remember(_request(now, country="JP")) == "new"
    assert past.places_to_remember(_request(now, country="FR", ip="10.1.2.3")) == ""
    assert past.places_to_remember(_request(now, country="US", ip="10.1.2.3")) == "later"
    assert past.places_to_remember(_request(now + 3_700, country="FR", ip="10.1.2.3")) == "later"
    fresh = serving.Past.of({**past.row, "network_seen": None})
    assert fresh.places_to_remember(_request(now, country="FR", ip="10.1.2.3")) == "later"
    # Another public address in a known block: the address is new. A private one is never
    # remembered: nothing to write for it.
    moved = serving.Past.of({**past.row, "address_seen": None})
    assert moved.places_to_remember(_request(now, country="FR", ip="24.1.2.3")) == "later"
    assert moved.places_to_remember(_request(now, country="FR", ip="10.1.2.3")) == ""
    # An account over 30 days old: its addresses are not the rules' business.
    older = serving.Past.of({**moved.row, "signup": now - 40 * 86_400})
    assert older.places_to_remember(_request(now, country="FR", ip="24.1.2.3")) == ""


async def test_the_generic_plan_of_the_past_query_scans_only_the_named_persons_rows(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """Whatever the statistics when it is made, the one plan the service's past connections
    keep for PAST_MANY reads each index by its leading column, equal to the person looked up:
    never a walk through a whole index."""
    assert settings.database_url is not None
    await _check_the_generic_plan(settings.database_url, settings)


async def test_the_generic_plan_made_on_an_empty_table_scans_only_the_named_persons_rows(
    database_factory: Callable[[], Awaitable[str]], settings: Settings
) -> None:
    """The same on a database just migrated (a new deployment, a benchmark's scratch database),
    where the tables have no statistics: there, with no index of a person's received transfers
    in (time, id) order, the plan walked the operators' index of everyone's assessments by
    time backwards (issue 24: 1.7 ms of PostgreSQL's time a scored transfer)."""
    fresh = await database_factory()
    conn = await asyncpg.connect(fresh)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    await _check_the_generic_plan(fresh, settings)


async def _check_the_generic_plan(dsn: str, settings: Settings) -> None:
    pasts = await create_pool(dsn, settings, **PAST_POOL)
    try:
        async with pasts.acquire() as conn:
            types = "uuid[], uuid[], text[], timestamptz[], text[], text[]"
            await conn.execute(f"PREPARE past_many({types}) AS {serving.PAST_MANY}")
            someone = f"ARRAY['{uuid.uuid4()}'::uuid]"
            plan = await conn.fetchval(
                f"EXPLAIN (FORMAT JSON) EXECUTE past_many({someone}, {someone}, ARRAY['d'], "
                "ARRAY[now()], ARRAY['10.0'], ARRAY['10.0.0.1'])"
            )
            await conn.execute("DEALLOCATE past_many")
            leading = dict(
                await conn.fetch(
                    """SELECT indexrelid::regclass::text, a.attname FROM pg_index i
                         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                        WHERE i.indrelid IN
                              (SELECT relid FROM pg_partition_tree('risk_assessments'))"""
                )
            )
    finally:
        await pasts.close()
    scans: list[tuple[str, str]] = []

    def walk(node: dict[str, object]) -> None:
        # Each month's partition (migration 0036) is scanned by its own index.
        ours = str(node.get("Relation Name", "")).startswith("risk_assessments")
        if ours and "Index Name" in node:
            scans.append((str(node["Index Name"]), str(node.get("Index Cond", ""))))
        if ours and "Index Name" not in node:
            scans.append(("(no index)", str(node.get("Node Type"))))
        for child in node.get("Plans", []):  # type: ignore[union-attr]
            walk(child)  # type: ignore[arg-type]

    walk(orjson.loads(plan)[0]["Plan"] if isinstance(plan, str) else plan[0]["Plan"])
    assert len(scans) >= 10
    for index, condition in scans:
        if index == "(no index)":
            continue  # a bitmap heap scan: its index scan is a child, checked there
        if index.startswith("risk_assessments_default"):
            continue  # empty unless a month's partition was not made: any index is cheap there
        assert f"({leading[index]} = " in condition, (index, condition)


async def test_a_person_paid_thousands_of_times_a_day_costs_a_window_not_a_day(
    pool: asyncpg.Pool, batch_engine: RulesEngine
) -> None:
    """The received and sent windows the past query reads hold the newest `serving.WINDOW`
    movements, as training's bounded deques do: a payment to someone paid thousands of times
    today reads as many rows as any other, and no feature changes."""
    tag = uuid.uuid4().hex[:8]
    me, them, crowd = await _people(pool, 3, days_ago=60)
    now = datetime.now(UTC)
    extra = 150
    many = serving.WINDOW + extra
    # Today: the crowd pays them, and they pay the crowd, `many` times each; and this week the
    # crowd pays me as often. One a second, the newest a minute ago.
    for payer, payee, days in ((crowd, them, 1), (them, crowd, 1), (crowd, me, 7)):
        await pool.execute(
            """INSERT INTO risk_assessments (user_id, kind, ref, counterparty_id, amount_minor,
                                             score, action, reasons, created_at, sender_new)
               SELECT $1, 'p2p', $3 || n, $2, 1000 + n, 0, 'allow', '{}',
                      $4::timestamptz - make_interval(secs => 60 + n * $5::float8), false
                 FROM generate_series(1, $6) n""",
            uuid.UUID(payer),
            uuid.UUID(payee),
            f"{tag}-{payer[:4]}-{payee[:4]}-",
            now,
            days * 86_000 / many,
            many,
        )
    movement = Movement("p2p", me, them, 5_000, "USD", ref=f"{tag}-probe")
    past, request, recipient = await batch_engine.past(movement, now)
    row = dict(past.row)
    bounded = {name: serving.json_list(row[name]) for name in ("received", "their_received")}
    bounded["their_sent"] = serving.json_list(row["their_sent"])
    for name, window in bounded.items():
        assert len(window) == serving.WINDOW, name
        amounts = sorted(entry[1] for entry in window) if name != "their_sent" else None
        if amounts is not None:  # the newest: amounts 1001 to 1000 + WINDOW
            assert amounts[0] == 1001 and amounts[-1] == 1000 + serving.WINDOW, name
    # Read whole, the windows give the same features.
    everything = dict(row)
    everything["received"] = [
        [r["at"], r["amount_minor"], r["user_id"], False]
        for r in await pool.fetch(
            """SELECT extract(epoch FROM created_at)::float8 AS at, amount_minor, user_id
                 FROM risk_assessments WHERE counterparty_id = $1 ORDER BY created_at, id""",
            uuid.UUID(me),
        )
    ]
    everything["their_received"] = [
        [r["at"], r["amount_minor"], r["user_id"], False]
        for r in await pool.fetch(
            """SELECT extract(epoch FROM created_at)::float8 AS at, amount_minor, user_id
                 FROM risk_assessments WHERE counterparty_id = $1 ORDER BY created_at, id""",
            uuid.UUID(them),
        )
    ]
    everything["their_sent"] = await pool.fetchval(
        """SELECT json_agg(extract(epoch FROM created_at) ORDER BY created_at, id)
             FROM risk_assessments WHERE user_id = $1""",
        uuid.UUID(them),
    )
    assert len(everything["their_received"]) == many
    whole = serving.Past(everything, past.events, past.devices, past.countries)
    read_whole = serving.features(whole, request, recipient)
    windowed = serving.features(past, request, recipient)
    differ = [
        name
        for name, a, b in zip(FEATURE_NAMES, read_whole, windowed, strict=True)
        if not _same(b, a)
    ]
    assert differ == []
    named = dict(zip(FEATURE_NAMES, windowed, strict=True))
    assert named["recipient_in_usd_24h"] > 0 and named["recipient_out_count_24h"] > 0


async def test_a_warmed_up_engine_has_planned_its_past_query_and_loaded_its_script(
    pool: asyncpg.Pool, redis: Redis, settings: Settings
) -> None:
    """warm_up pays for each part's first use before a movement would: every past connection
    holds PAST_MANY prepared (planned on its first execution), and Redis holds the velocity
    script."""
    assert settings.database_url is not None
    pasts = await create_pool(settings.database_url, settings, **PAST_POOL)
    engine = RulesEngine(
        pool, redis, RiskRules(), Scorer.load(), freeze=engine_freezer(pool), pasts=pasts
    )
    script = hashlib.sha1(velocity._OBSERVE.encode(), usedforsecurity=False).hexdigest()
    try:
        await redis.script_flush()
        assert await redis.script_exists(script) == [False]
        await engine.warm_up()
        assert await redis.script_exists(script) == [True]
        connections = [await pasts.acquire() for _ in range(PAST_CONNECTIONS)]
        try:
            for conn in connections:
                prepared = await conn.fetchval(
                    "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1",
                    serving.PAST_MANY,
                )
                assert prepared == 1
        finally:
            for conn in connections:
                await pasts.release(conn)
    finally:
        await pasts.close()


async def test_two_people_who_pay_each_other_thousands_of_times_cost_a_capped_read(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """Between two people paid back and forth thousands of times (rent, payroll), the past query
    reads at most COUNT_CAP of their payments to each other: the count of earlier payments
    stops at the cap, and the last payment back is the first entry of a backward index scan,
    not a sort of all of them. The score is the one the whole count gives."""
    tag = uuid.uuid4().hex[:8]
    me, them = await _people(pool, 2, days_ago=400)
    many = 2 * serving.COUNT_CAP + 500
    now = datetime.now(UTC)
    for payer, payee in ((me, them), (them, me)):
        # Older than every window the query reads whole: 40 to 390 days ago, the newest last.
        await pool.execute(
            """INSERT INTO risk_assessments (user_id, kind, ref, counterparty_id, amount_minor,
                                             score, action, reasons, created_at)
               SELECT $1, 'p2p', $3 || n, $2, 1000 + n, 0, 'allow', '{}',
                      $4::timestamptz - interval '390 days'
                      + make_interval(secs => n * 350 * 86400.0 / $5)
                 FROM generate_series(1, $5) n""",
            uuid.UUID(payer),
            uuid.UUID(payee),
            f"{tag}-{payer[:4]}-",
            now,
            many,
        )
    arguments = [[uuid.UUID(me)], [uuid.UUID(them)], ["d"], [now], [None], [None]]
    assert settings.database_url is not None
    pasts = await create_pool(settings.database_url, settings, **PAST_POOL)
    try:
        async with pasts.acquire() as conn:
            row = await conn.fetchrow(serving.PAST_MANY, *arguments)
            plan = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + serving.PAST_MANY, *arguments
            )
    finally:
        await pasts.close()
    assert row is not None
    assert row["times_paid"] == serving.COUNT_CAP
    newest = now - timedelta(days=40)
    at, amount = serving.json_list(row["paid_by_them"])
    assert amount == 1000 + many and abs(at - newest.timestamp()) < 1
    read: list[tuple[str, int]] = []

    def walk(node: dict[str, Any]) -> None:
        # Each month's partition (migration 0036) is read by its own index.
        if str(node.get("Relation Name", "")).startswith("risk_assessments"):
            read.append((str(node.get("Index Name")), int(node["Actual Rows"])))
        for child in node.get("Plans", []):
            walk(child)

    walk(orjson.loads(plan)[0]["Plan"] if isinstance(plan, str) else plan[0]["Plan"])
    assert read and max(rows for _, rows in read) <= serving.COUNT_CAP, read
    capped = serving.Past.of(row)
    whole = serving.Past(
        {**dict(row), "times_paid": many}, capped.events, capped.devices, capped.countries
    )
    request = Request(now, "p2p", 5_000, None, "d", "US", "", serving.THEM)
    scorer = Scorer.load()
    recipient = uuid.UUID(them)
    assert scorer.score(serving.features(capped, request, recipient)) == scorer.score(
        serving.features(whole, request, recipient)
    )
