"""The daily figures count each event once however often it is delivered, and give the day's
P2P hold and decline rates; `billfold events figures` prints them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from billfold.config import Settings
from billfold.events.brokers import Message
from billfold.events.consumer import CloudEvent, consume_once
from billfold.events.figures import DayFigures, Figures, Rates, TypeFigure, day_figures
from tests.events.conftest import MakeBroker
from tests.world import billfold

# ISO 4217's code for tests: no other test's events are in it.
TEST_CURRENCY = "XTS"


def event(what: str, at: datetime, **data: Any) -> CloudEvent:
    """A CloudEvent of kind `what` (transfer.held) at `at`, its data in TEST_CURRENCY."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/billfold",
        "type": f"billfold.{what}.v1",
        "subject": "test/1",
        "time": at.isoformat(),
        "datacontenttype": "application/json",
        "data": {"currency": TEST_CURRENCY, **data},
    }


def a_day(now: datetime) -> list[CloudEvent]:
    """Ten P2P transfers decided: six completed at once, three held (one then declined, two
    then completed), one declined at once; and an add-funds, which is no P2P decision."""
    p2p = {"kind": "transfer", "code": "p2p"}
    return [
        *(event("transfer.completed", now, amount="10.00", **p2p) for _ in range(6)),
        *(event("transfer.held", now, amount="50.00", transfer_id="7") for _ in range(3)),
        event("transfer.declined", now, amount="50.00", transfer_id="7"),
        *(event("transfer.completed", now, amount="50.00", kind="post", code="p2p") for _ in "ab"),
        event("transfer.declined", now, amount="900.00", transfer_id=None),
        event("transfer.completed", now, amount="0.25", kind="transfer", code="add_funds"),
    ]


def of_test_currency(figures: DayFigures) -> tuple[dict[str, tuple[int, int]], Rates | None]:
    by_type = {
        f.type.removeprefix("billfold."): (f.count, f.volume_minor)
        for f in figures.by_type
        if f.currency == TEST_CURRENCY
    }
    rates = next((r for r in figures.rates if r.currency == TEST_CURRENCY), None)
    return by_type, rates


def minus(
    after: dict[str, tuple[int, int]], before: dict[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    changed = {
        t: (c - before.get(t, (0, 0))[0], v - before.get(t, (0, 0))[1])
        for t, (c, v) in after.items()
    }
    return {t: cv for t, cv in changed.items() if cv != (0, 0)}


async def test_each_event_counts_once_however_often_it_is_delivered(pool: asyncpg.Pool) -> None:
    """The day's events, delivered whole to two members at once and again in overlapping
    batches (at least once), count once each: by type and currency, with their volume, and the
    hold and decline rates over the P2P decisions. An event past the horizon counts nothing."""
    now = datetime.now(UTC)
    before, rates_before = of_test_currency(await day_figures(pool, now.date()))
    events = a_day(now)
    long_ago = now - timedelta(days=30)
    stale = event("transfer.completed", long_ago, amount="1.00", kind="transfer", code="p2p")
    members = [Figures(pool, retention_h=72), Figures(pool, retention_h=72)]
    await asyncio.gather(*(m.handle([*events, stale]) for m in members))
    await members[0].handle(events[3:9])
    await members[1].handle([*events[::2], events[0]])

    after, rates = of_test_currency(await day_figures(pool, now.date()))
    assert minus(after, before) == {
        "transfer.completed.v1": (9, 6 * 1000 + 2 * 5000 + 25),
        "transfer.held.v1": (3, 15000),
        "transfer.declined.v1": (2, 95000),
    }
    assert rates is not None
    gained = Rates(
        TEST_CURRENCY,
        rates.decisions - (rates_before.decisions if rates_before else 0),
        rates.held - (rates_before.held if rates_before else 0),
        rates.declined - (rates_before.declined if rates_before else 0),
    )
    assert gained == Rates(TEST_CURRENCY, decisions=10, held=3, declined=2)
    assert (gained.hold_rate, gained.decline_rate) == (0.3, 0.2)
    assert of_test_currency(await day_figures(pool, long_ago.date())) == ({}, None)


async def test_a_redelivered_batch_is_not_counted_twice(
    make_broker: MakeBroker, pool: asyncpg.Pool
) -> None:
    """A member that counted a batch and died before acknowledging it: the group hands the
    batch to another member after redeliver_after_s, which counts nothing more."""
    today = datetime.now(UTC)
    # A day of its own, so that the count is this test's alone (whichever broker it runs on).
    day = today + timedelta(days=uuid.uuid4().int % 10_000 + 1)
    events = [event("transfer.completed", day, amount="1.00", kind="t", code="c") for _ in "abcd"]
    await (await make_broker()).publish(
        [Message(e["id"], e["type"], orjson.dumps(e)) for e in events]
    )
    group = f"figures-{uuid.uuid4().hex[:12]}"
    figures = Figures(pool, retention_h=72)
    dying = await (await make_broker(redeliver_after_s=0.5)).group(group, "dying")
    taken = await dying.take(10, 2.0)
    await figures.handle([orjson.loads(t.message.body) for t in taken])  # then it dies
    survivor = await (await make_broker(redeliver_after_s=0.5)).group(group, "survivor")
    redelivered: list[str] = []

    async def handle(batch: Sequence[CloudEvent]) -> None:
        redelivered.extend(e["id"] for e in batch)
        await figures.handle(batch)

    async with asyncio.timeout(15):
        while not {t.message.id for t in taken} <= set(redelivered):
            await consume_once(survivor, group, handle)
    assert (await day_figures(pool, day.date())).by_type == [
        TypeFigure("billfold.transfer.completed.v1", TEST_CURRENCY, 4, 400)
    ]


async def test_the_command_prints_a_days_figures(pool: asyncpg.Pool, settings: Settings) -> None:
    """`billfold events figures --day D` prints the day's figures by type and its P2P rates."""
    day = date(2199, 1, 1) + timedelta(days=uuid.uuid4().int % 10_000)
    at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    await Figures(pool, retention_h=72).handle(a_day(at))
    result = billfold(settings, "events", "figures", "--day", day.isoformat())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Events of {day.isoformat()} (UTC)"
    assert ["transfer.completed", TEST_CURRENCY, "9", "160.25"] in [line.split() for line in lines]
    assert [TEST_CURRENCY, "10", "3", "2", "30.0%", "20.0%"] in [line.split() for line in lines]
