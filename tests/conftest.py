"""Shared fixtures: a fresh PostgreSQL database and a Redis database of its own per test session.

With DATABASE_URL / REDIS_URL set, the fresh database is created on that server (the database the
URL names is left untouched) and an empty Redis db number is claimed there. Without them, the
embedded servers are started under a temporary data dir. Everything is dropped at the end.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from billfold.config import Settings
from billfold.platform.db import create_pool, dsn_for_database
from billfold.platform.embedded import ensure_database, ensure_redis, release_embedded
from billfold.platform.migrate import apply_migrations
from billfold.platform.redis import create_redis

# Redis db numbers the tests may claim, highest first, away from the usual db 0.
_REDIS_DBS = range(15, 0, -1)
_REDIS_CLAIM_KEY = "billfold-test:claimed-by"

DatabaseFactory = Callable[[], Awaitable[str]]


@pytest.fixture(scope="session")
def test_data_dir() -> Iterator[Path]:
    """A BILLFOLD_DATA_DIR for this session; holds the embedded servers when they are used."""
    path = Path(tempfile.mkdtemp(prefix="billfold-test-"))
    yield path
    release_embedded(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server_url(test_data_dir: Path) -> str:
    """A DSN with rights to create databases: DATABASE_URL, or the embedded server's."""
    external = os.environ.get("DATABASE_URL") or None
    return ensure_database(Settings(DATABASE_URL=external, data_dir=test_data_dir))


@pytest.fixture(scope="session")
async def database_factory(postgres_server_url: str) -> AsyncIterator[DatabaseFactory]:
    """Creates empty databases on the test server on demand; drops them all at session end."""
    created: list[str] = []

    async def create() -> str:
        name = f"billfold_test_{secrets.token_hex(6)}"
        conn = await asyncpg.connect(postgres_server_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        created.append(name)
        return dsn_for_database(postgres_server_url, name)

    yield create
    conn = await asyncpg.connect(postgres_server_url)
    try:
        for name in created:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def database_url(database_factory: DatabaseFactory) -> str:
    """A fresh, empty database for this session (migrated once the `pool` fixture is used)."""
    return await database_factory()


@pytest.fixture(scope="session")
def redis_url(test_data_dir: Path) -> Iterator[str]:
    """A Redis database number no one else uses, on REDIS_URL's server or the embedded one."""
    external = os.environ.get("REDIS_URL") or None
    server_url = ensure_redis(Settings(REDIS_URL=external, data_dir=test_data_dir))
    url = _claim_redis_db(server_url)
    yield url
    client = SyncRedis.from_url(url)
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, test_data_dir: Path) -> Settings:
    return Settings(DATABASE_URL=database_url, REDIS_URL=redis_url, data_dir=test_data_dir)


@pytest.fixture(scope="module")
async def isolated_settings(
    database_factory: DatabaseFactory, test_data_dir: Path
) -> AsyncIterator[Settings]:
    """Settings on a fresh database and a Redis database of the module's own, for a module that
    reads a whole database (`billfold ach export` sends every pending entry) and so must not
    meet what other modules left there. Redis too: caches are keyed by ledger ids, which a
    fresh database hands out again."""
    external = os.environ.get("REDIS_URL") or None
    url = _claim_redis_db(ensure_redis(Settings(REDIS_URL=external, data_dir=test_data_dir)))
    yield Settings(DATABASE_URL=await database_factory(), REDIS_URL=url, data_dir=test_data_dir)
    client = SyncRedis.from_url(url)
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the session's database, with every migration applied."""
    assert settings.database_url is not None
    pool = await create_pool(settings.database_url, settings)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """The session's asyncio Redis client (str replies), on its own Redis database."""
    client = await create_redis(redis_url)
    yield client
    await client.aclose()


def _claim_redis_db(server_url: str) -> str:
    """The URL of the first empty Redis db, marked as ours so a parallel session skips it."""
    token = secrets.token_hex(8)
    for db in _REDIS_DBS:
        url = _redis_url_with_db(server_url, db)
        client = SyncRedis.from_url(url)
        try:
            claimed = client.set(_REDIS_CLAIM_KEY, token, nx=True)
            if claimed and client.dbsize() == 1:
                return url
            if claimed:
                client.delete(_REDIS_CLAIM_KEY)
        finally:
            client.close()
    raise RuntimeError(f"no empty Redis database among {list(_REDIS_DBS)} on {server_url}")


def _redis_url_with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(db))]
        # urlunsplit would drop the empty host and write unix:/path, which redis-py refuses.
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunsplit(parts._replace(path=f"/{db}"))
