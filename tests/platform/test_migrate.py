"""The migration runner, on fresh databases and migration folders of the tests' own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from billfold.config import Settings
from billfold.platform.db import connect, server_settings
from billfold.platform.migrate import (
    MigrationChecksumMismatch,
    MigrationError,
    apply_migrations,
    load_migrations,
    migrations_dir,
    pending_migrations,
)

Connector = Callable[[], Awaitable[asyncpg.Connection]]


@pytest.fixture
async def fresh_connect(database_factory: Callable[[], Awaitable[str]]) -> AsyncIterator[Connector]:
    """Connections to one new, empty database; closed after the test."""
    dsn = await database_factory()
    settings = Settings(DATABASE_URL=dsn)
    opened: list[asyncpg.Connection] = []

    async def open_connection() -> asyncpg.Connection:
        conn = await connect(dsn, settings)
        opened.append(conn)
        return conn

    yield open_connection
    for conn in opened:
        await conn.close()


def write(directory: Path, name: str, sql: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(sql, encoding="utf-8")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    directory = tmp_path / "migrations"
    write(directory, "0001_notes.sql", "CREATE TABLE notes (id int PRIMARY KEY, body text);")
    write(
        directory,
        "0002_first_note.sql",
        "INSERT INTO notes VALUES (1, 'one');\nINSERT INTO notes VALUES (2, 'two');",
    )
    return directory


async def test_applies_in_order_and_records_each(fresh_connect: Connector, folder: Path) -> None:
    """Pending files run in version order, once, and each is recorded with its checksum."""
    conn = await fresh_connect()
    assert await pending_migrations(conn, folder) == ["0001_notes", "0002_first_note"]

    assert await apply_migrations(conn, folder) == ["0001_notes", "0002_first_note"]

    assert await apply_migrations(conn, folder) == []
    assert await pending_migrations(conn, folder) == []
    assert await conn.fetchval("SELECT count(*) FROM notes") == 2
    rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations ORDER BY 1")
    expected = [(m.version, m.name, m.checksum) for m in load_migrations(folder)]
    assert [tuple(row) for row in rows] == expected


async def test_new_file_is_pending_then_applied(fresh_connect: Connector, folder: Path) -> None:
    """A file added after a run is the only one pending and the only one applied next time."""
    conn = await fresh_connect()
    await apply_migrations(conn, folder)
    write(folder, "0003_note_author.sql", "ALTER TABLE notes ADD COLUMN author text;")

    assert await pending_migrations(conn, folder) == ["0003_note_author"]
    assert await apply_migrations(conn, folder) == ["0003_note_author"]


async def test_changed_applied_file_is_refused(fresh_connect: Connector, folder: Path) -> None:
    """Editing an applied migration stops the run before anything else is applied."""
    conn = await fresh_connect()
    await apply_migrations(conn, folder)
    write(folder, "0002_first_note.sql", "INSERT INTO notes VALUES (3, 'three');")
    write(folder, "0003_note_author.sql", "ALTER TABLE notes ADD COLUMN author text;")

    with pytest.raises(MigrationChecksumMismatch, match="'0002_first_note' was changed"):
        await apply_migrations(conn, folder)
    assert await pending_migrations(conn, folder) == ["0003_note_author"]


async def test_failed_file_rolls_back_alone(fresh_connect: Connector, folder: Path) -> None:
    """A failing file leaves no trace; the files before it stay applied."""
    write(folder, "0003_broken.sql", "CREATE TABLE half (id int);\nSELECT no_such_column;")
    conn = await fresh_connect()

    with pytest.raises(MigrationError, match="'0003_broken' failed"):
        await apply_migrations(conn, folder)

    assert await pending_migrations(conn, folder) == ["0003_broken"]
    assert await conn.fetchval("SELECT to_regclass('half')") is None
    assert await conn.fetchval("SELECT count(*) FROM notes") == 2


async def test_concurrent_runs_apply_each_file_once(
    fresh_connect: Connector, tmp_path: Path
) -> None:
    """Two instances migrating one database at once: every file runs exactly once."""
    folder = tmp_path / "slow"
    write(folder, "0001_counter.sql", "CREATE TABLE runs (n int); SELECT pg_sleep(0.3);")
    write(folder, "0002_count.sql", "INSERT INTO runs VALUES (1);")
    first, second = await fresh_connect(), await fresh_connect()

    results = await asyncio.gather(
        apply_migrations(first, folder), apply_migrations(second, folder)
    )

    assert sorted(results) == [[], ["0001_counter", "0002_count"]]
    assert await first.fetchval("SELECT count(*) FROM runs") == 1
    assert await first.fetchval("SELECT count(*) FROM schema_migrations") == 2


async def test_session_timeouts_are_restored(fresh_connect: Connector, folder: Path) -> None:
    """A run lifts lock_timeout and statement_timeout for itself only."""
    conn = await fresh_connect()
    requested = server_settings(Settings())
    query = "SELECT setting FROM pg_settings WHERE name = $1"

    await apply_migrations(conn, folder)

    assert await conn.fetchval(query, "lock_timeout") == requested["lock_timeout"]
    assert await conn.fetchval(query, "statement_timeout") == requested["statement_timeout"]


def test_badly_named_file_is_refused(folder: Path) -> None:
    """A .sql file the runner would otherwise skip silently is an error."""
    write(folder, "3_oops.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match=r"'3_oops\.sql' is not named"):
        load_migrations(folder)


def test_duplicate_version_is_refused(folder: Path) -> None:
    write(folder, "0002_other_note.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="share version 2"):
        load_migrations(folder)


def test_default_folder_is_the_repository_one() -> None:
    """Running from a checkout, migrations come from the repository's migrations/ folder."""
    assert migrations_dir() == Path(__file__).resolve().parents[2] / "migrations"
