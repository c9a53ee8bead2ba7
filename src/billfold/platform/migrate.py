"""Apply numbered plain-SQL migrations (`migrations/NNNN_name.sql`), each once, in order.

Each file runs in its own transaction and is recorded in `schema_migrations` with a checksum of
its text; an applied file must never change. The whole run holds a PostgreSQL advisory lock, so
when several instances start at once the others wait and then find nothing left to do.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from billfold.platform.errors import BillfoldError

# pg_advisory_lock key for migration runs (advisory locks are per database). Arbitrary but fixed:
# the ASCII bytes of "billfold" read as a signed 64-bit integer.
MIGRATION_LOCK_KEY = int.from_bytes(b"billfold", "big", signed=True)
# A migration that cannot take its table locks within this time fails, rather than queueing
# every request behind its lock request on a busy database. Run it again later.
MIGRATION_LOCK_TIMEOUT_MS = 5000

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<label>[a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version int PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(BillfoldError):
    code = "migration_error"
    status = 500
    title = "Database migration failed"


class MigrationChecksumMismatch(MigrationError):
    code = "migration_checksum_mismatch"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Path:
    """The repository's `migrations/` when running from a checkout, else the packaged copy."""
    here = Path(__file__).resolve()
    checkout = here.parents[3]
    if (checkout / "pyproject.toml").is_file() and (checkout / "migrations").is_dir():
        return checkout / "migrations"
    packaged = here.parents[1] / "_migrations"
    if packaged.is_dir():
        return packaged
    raise MigrationError(
        f"no migrations folder: neither {checkout / 'migrations'} nor {packaged} exists"
    )


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Every migration file in `directory` (default `migrations_dir()`), by version."""
    directory = directory if directory is not None else migrations_dir()
    by_version: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(
                f"migration file '{path.name}' is not named NNNN_lowercase_name.sql",
                file=str(path),
            )
        version = int(match["version"])
        if version in by_version:
            other = by_version[version].name
            raise MigrationError(
                f"migrations '{other}' and '{path.stem}' share version {version}", version=version
            )
        by_version[version] = Migration(version, path.stem, path.read_text(encoding="utf-8"))
    return [by_version[version] for version in sorted(by_version)]


async def pending_migrations(conn: asyncpg.Connection, directory: Path | None = None) -> list[str]:
    """Names of the migrations not yet applied, in the order they would run."""
    applied = await _applied_checksums(conn)
    return [m.name for m in load_migrations(directory) if m.version not in applied]


async def apply_migrations(conn: asyncpg.Connection, directory: Path | None = None) -> list[str]:
    """Apply pending migrations in version order; return the names applied (empty if none).

    Raises MigrationChecksumMismatch before applying anything if an applied file has changed.
    If a migration fails, its transaction rolls back and the error rises; the ones before it
    stay applied.
    """
    migrations = load_migrations(directory)
    # Waiting for another instance's run must not time out, so lift the session's timeouts
    # until the end of this run.
    await conn.execute("SET lock_timeout = 0; SET statement_timeout = 0")
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        applied = await _applied_checksums(conn)
        _check_unchanged(migrations, applied)
        names: list[str] = []
        for migration in migrations:
            if migration.version not in applied:
                await _apply_one(conn, migration)
                names.append(migration.name)
        return names
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        await conn.execute("RESET lock_timeout; RESET statement_timeout")


async def _apply_one(conn: asyncpg.Connection, migration: Migration) -> None:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = {MIGRATION_LOCK_TIMEOUT_MS}")
        try:
            # Without arguments asyncpg uses the simple query protocol, which runs a file of
            # several statements as one.
            await conn.execute(migration.sql)
        except asyncpg.PostgresError as error:
            raise MigrationError(
                f"migration '{migration.name}' failed: {error}", migration=migration.name
            ) from error
        await conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            migration.version,
            migration.name,
            migration.checksum,
        )


async def _applied_checksums(conn: asyncpg.Connection) -> dict[int, str]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {row["version"]: row["checksum"] for row in rows}


def _check_unchanged(migrations: list[Migration], applied: dict[int, str]) -> None:
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            raise MigrationChecksumMismatch(
                f"migration '{migration.name}' was changed after it was applied "
                f"(checksum {migration.checksum[:12]}, applied {recorded[:12]}); "
                "add a new migration instead of editing an applied one",
                migration=migration.name,
            )
