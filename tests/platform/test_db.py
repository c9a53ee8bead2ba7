"""Pool and connection setup: session parameters and the orjson json/jsonb codecs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from billfold.config import Settings
from billfold.platform.db import connect, create_pool, dsn_for_database, fetch, fetchrow


async def test_pool_connections_keep_their_parameters(
    database_factory: Callable[[], Awaitable[str]],
) -> None:
    """application_name and the timeouts hold on every use, also after the pool's RESET ALL."""
    dsn = await database_factory()
    settings = Settings(DATABASE_URL=dsn, db_pool_min=1, db_pool_max=1, lock_timeout_ms=1234)
    pool = await create_pool(dsn, settings)
    query = "SELECT current_setting('application_name'), current_setting('lock_timeout')"
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET lock_timeout = 5")
        async with pool.acquire() as conn:
            row = await conn.fetchrow(query)
    finally:
        await pool.close()
    assert tuple(row) == ("billfold", "1234ms")


async def test_stateless_reads_skip_the_reset_and_other_uses_keep_it(
    database_factory: Callable[[], Awaitable[str]],
) -> None:
    """fetchrow/fetch hand their connection back without the reset round trip; any other use of
    a pooled connection is still reset when it comes back."""
    dsn = await database_factory()
    settings = Settings(DATABASE_URL=dsn, db_pool_min=1, db_pool_max=1, lock_timeout_ms=1234)
    pool = await create_pool(dsn, settings)
    monitor = await connect(dsn, settings)
    # An idle backend's pg_stat_activity.query is the last statement it ran.
    last_statement = "SELECT query FROM pg_stat_activity WHERE pid = $1"
    try:
        row = await fetchrow(pool, "SELECT pg_backend_pid()")
        assert row is not None
        pid = row[0]
        assert await monitor.fetchval(last_statement, pid) == "SELECT pg_backend_pid()"
        async with pool.acquire() as conn:
            await conn.execute("SET lock_timeout = 5")
        assert "RESET ALL" in await monitor.fetchval(last_statement, pid)
        rows = await fetch(pool, "SELECT pg_backend_pid(), current_setting('lock_timeout')")
        assert [tuple(r) for r in rows] == [(pid, "1234ms")]
        assert "RESET ALL" not in await monitor.fetchval(last_statement, pid)
    finally:
        await monitor.close()
        await pool.close()


async def test_json_and_jsonb_round_trip(database_factory: Callable[[], Awaitable[str]]) -> None:
    """Python values go in and come out of json and jsonb columns unchanged."""
    dsn = await database_factory()
    conn = await connect(dsn, Settings(DATABASE_URL=dsn))
    value = {"amount_minor": 1250, "currency": "USD", "tags": ["rent", "été"], "note": None}
    try:
        await conn.execute("CREATE TABLE documents (binary_doc jsonb, text_doc json)")
        await conn.execute("INSERT INTO documents VALUES ($1, $2)", value, value)
        row = await conn.fetchrow("SELECT binary_doc, text_doc FROM documents")
        in_sql = await conn.fetchval("SELECT binary_doc->'tags'->>1 FROM documents")
    finally:
        await conn.close()
    assert (row["binary_doc"], row["text_doc"], in_sql) == (value, value, "été")


def test_dsn_for_database_keeps_host_and_options() -> None:
    """Only the database name changes, for TCP and unix-socket DSNs alike."""
    assert (
        dsn_for_database("postgresql://postgres@127.0.0.1:5432/test?sslmode=disable", "other")
        == "postgresql://postgres@127.0.0.1:5432/other?sslmode=disable"
    )
    assert (
        dsn_for_database("postgresql://postgres@/billfold?host=/tmp/data/pg", "other")
        == "postgresql://postgres@/other?host=/tmp/data/pg"
    )
