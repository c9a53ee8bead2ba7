"""Monthly partitions: a write to a month with none yet, their creation ahead by several
processes at once, detaching old months into `archive`, and pruning in the plans."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import pytest

from billfold.config import Settings
from billfold.events.outbox import DETACH_GUARD
from billfold.platform.db import create_pool
from billfold.platform.migrate import apply_migrations
from billfold.platform.partitions import add_months, detach, ensure, list_partitions, parse_month

INSERT = """
INSERT INTO outbox (type, source, subject, ordering_key, partition, time, data, published_at)
VALUES ('billfold.test.v1', 'test', 'test', $1, 0, $2, '{}', $3) RETURNING id
"""


@pytest.fixture(scope="module")
async def pool(isolated_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A database of this module's own: it makes and detaches months of the outbox."""
    assert isolated_settings.database_url is not None
    pool = await create_pool(isolated_settings.database_url, isolated_settings)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    yield pool
    await pool.close()


async def _where(pool: asyncpg.Pool, key: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT tableoid::regclass::text FROM outbox WHERE ordering_key = $1", key
    )
    return [r[0] for r in rows]


async def test_a_month_with_no_partition_takes_writes_that_move_in_when_it_is_made(
    pool: asyncpg.Pool,
) -> None:
    """A row of a month not partitioned yet lands in the default partition, and moves into its
    month's partition when that is created; nothing is lost or doubled."""
    key = str(uuid.uuid4())
    await pool.fetchval(INSERT, key, datetime(2041, 3, 31, 23, 59, tzinfo=UTC), None)
    assert await _where(pool, key) == ["outbox_default"]
    made = await ensure(pool, 1, today=date(2041, 3, 15))
    assert made["outbox"] == ["outbox_p2041_03", "outbox_p2041_04"]
    assert made["entries"] == ["entries_p2041_03", "entries_p2041_04"]
    assert await _where(pool, key) == ["outbox_p2041_03"]
    assert await ensure(pool, 1, today=date(2041, 3, 15)) == {}


async def test_several_processes_ensuring_at_once_make_each_partition_once(
    isolated_settings: Settings, pool: asyncpg.Pool
) -> None:
    """Three pools (three nodes) create the same months at once: each exists once, no error."""
    assert isolated_settings.database_url is not None
    pools = [await create_pool(isolated_settings.database_url, isolated_settings) for _ in range(3)]
    try:
        made = await asyncio.gather(*(ensure(p, 5, today=date(2043, 1, 1)) for p in pools))
    finally:
        for p in pools:
            await p.close()
    names = sorted(name for each in made for name in each.get("outbox", []))
    assert names == [f"outbox_p{add_months(date(2043, 1, 1), n):%Y_%m}" for n in range(6)]


async def test_detach_archives_old_months_but_keeps_one_with_unpublished_events(
    pool: asyncpg.Pool,
) -> None:
    """Months before the given one leave the table for the `archive` schema with their rows;
    one that still holds an unpublished event stays."""
    await ensure(pool, 1, today=date(2021, 1, 1))
    published, waiting = str(uuid.uuid4()), str(uuid.uuid4())
    at = datetime(2021, 1, 10, tzinfo=UTC)
    await pool.fetchval(INSERT, published, at, at)
    await pool.fetchval(INSERT, waiting, datetime(2021, 2, 10, tzinfo=UTC), None)
    lines: list[str] = []
    detached, kept = await detach(
        pool, parse_month("2021-03"), {"outbox": DETACH_GUARD}, lines.append
    )
    assert "outbox_p2021_01" in detached and kept == ["outbox_p2021_02"]
    assert "entries_p2021_01" in detached  # empty: nothing to carry forward
    assert all(line.startswith("[") for line in lines) and len(lines) >= 2
    assert await _where(pool, published) == []
    archived = await pool.fetchval(
        "SELECT count(*) FROM archive.outbox_p2021_01 WHERE ordering_key = $1", published
    )
    assert archived == 1
    assert await _where(pool, waiting) == ["outbox_p2021_02"]
    async with pool.acquire() as conn:
        names = {p.name for p in await list_partitions(conn)}
    assert "outbox_p2021_01" not in names and "outbox_p2021_02" in names
    # A month made again after it was detached stays: the archive has that name.
    await ensure(pool, 0, today=date(2021, 1, 1))
    again, kept = await detach(pool, parse_month("2021-02"), {}, lines.append)
    assert again == [] and "outbox_p2021_01" in kept
    with pytest.raises(ValueError, match="has not begun"):
        await detach(pool, add_months(datetime.now(UTC).date().replace(day=1), 1), {})


async def test_a_read_by_time_scans_only_its_months(pool: asyncpg.Pool) -> None:
    """The plan of a read bounded in time names its month's partition and no other."""
    await ensure(pool, 2, today=date(2035, 6, 1))
    plan = "\n".join(
        r[0]
        for r in await pool.fetch(
            """EXPLAIN SELECT count(*) FROM outbox
                WHERE time >= '2035-07-01T00:00Z' AND time < '2035-07-20T00:00Z'"""
        )
    )
    assert "outbox_p2035_07" in plan
    assert "outbox_p2035_06" not in plan and "outbox_p2035_08" not in plan
    assert "outbox_default" not in plan


def test_months_are_read_and_counted_exactly() -> None:
    assert parse_month("2026-12") == date(2026, 12, 1)
    assert add_months(date(2026, 12, 1), 1) == date(2027, 1, 1)
    assert add_months(date(2026, 1, 1), 23) == date(2027, 12, 1)
    with pytest.raises(ValueError, match="'2026-13' is not YYYY-MM"):
        parse_month("2026-13")


def test_the_command_lists_ensures_and_detaches_with_progress(
    isolated_settings: Settings, pool: asyncpg.Pool
) -> None:
    """`billfold partitions ensure|list|detach` on the module's database; a bad month is named."""
    assert isolated_settings.database_url is not None

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DATABASE_URL": isolated_settings.database_url or ""}
        command = [str(Path(sys.executable).with_name("billfold")), "partitions", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    ensured = run("ensure", "--months-ahead", "3")
    assert ensured.returncode == 0 and ensured.stdout.startswith("created "), ensured.stderr
    month = f"{datetime.now(UTC).date().replace(day=1):%Y_%m}"
    assert f"outbox_p{month}" in run("list").stdout
    detached = run("detach", "--before", "2020-01")
    assert (detached.returncode, detached.stdout) == (0, "detached 0 partitions; kept 0\n")
    bad = run("detach", "--before", "2029-1x")
    assert (bad.returncode, bad.stderr.strip()) == (1, "error: month '2029-1x' is not YYYY-MM")
