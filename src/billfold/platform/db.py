"""asyncpg connections and pools, configured the same way for the service and the CLI."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

from billfold.config import Settings

log = logging.getLogger(__name__)

APPLICATION_NAME = "billfold"
# Session parameters the outbox's statements read (events.outbox): whether events are written
# at all (config.outbox) and into how many relay partitions (config.events_partitions).
OUTBOX_SETTING = "billfold.outbox"
PARTITIONS_SETTING = "billfold.events_partitions"
CONNECT_TIMEOUT_S = 10.0
# A pool closing waits this long for its connections to be given back, then cuts them.
CLOSE_TIMEOUT_S = 10.0
# The first byte of a binary jsonb value is its format version; PostgreSQL only knows 1.
_JSONB_VERSION = b"\x01"


class BillfoldConnection(asyncpg.Connection):  # type: ignore[misc]
    """A connection that knows when its last use from the pool left no session state behind.

    The pool resets every connection it takes back (RESET ALL, UNLISTEN, CLOSE ALL, advisory
    locks), which costs a round trip. After `fetchrow` or `fetch` below, which ran one
    read-only statement, there is nothing to reset, and the round trip is skipped.
    """

    __slots__ = ("_stateless_use",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stateless_use = False

    def mark_stateless_use(self) -> None:
        self._stateless_use = True


async def _reset(conn: BillfoldConnection) -> None:
    """What the pool runs on a connection it takes back (after rolling back any transaction)."""
    if conn._stateless_use:
        conn._stateless_use = False
        return
    query = conn.get_reset_query()
    if query:
        await conn.execute(query)


async def create_pool(
    dsn: str,
    settings: Settings,
    *,
    size: int | None = None,
    generic_plans: bool = False,
    command_timeout_s: float | None = None,
) -> asyncpg.Pool:
    """A pool of settings.db_pool_min..db_pool_max connections (or exactly `size`), each set up
    by `init_connection`. With `generic_plans`, PostgreSQL plans each statement once per
    connection, for any values, and never again (plan_cache_mode): for a few statements whose
    planning costs more than running them, and whose plan fits every value alike. Such a plan
    makes no bitmap scans: made without knowing how many rows a value has, a plan for "the
    newest rows of this person" could otherwise read all of that person's rows, and sort them,
    before its LIMIT stops it (migration 0016). With `command_timeout_s`, a statement the server
    does not answer in time raises TimeoutError, and so does cancelling it (the connection is
    then dropped): for a server that may hang rather than fail (a replica, platform.replica)."""
    session = server_settings(settings)
    if generic_plans:
        session["plan_cache_mode"] = "force_generic_plan"
        session["enable_bitmapscan"] = "off"
    return await asyncpg.create_pool(
        dsn,
        min_size=settings.db_pool_min if size is None else size,
        max_size=settings.db_pool_max if size is None else size,
        timeout=CONNECT_TIMEOUT_S,
        server_settings=session,
        init=init_connection,
        connection_class=BillfoldConnection,
        reset=_reset,
        command_timeout=command_timeout_s,
    )


async def fetchrow(pool: asyncpg.Pool, query: str, *args: Any) -> asyncpg.Record | None:
    """One row of one statement, on a pooled connection given back without a reset.

    Only for constant statements of our own that leave no session state (a SELECT, or an
    INSERT ... RETURNING in its own implicit transaction): one that changed it (SET, set_config,
    an advisory lock, LISTEN) would leak it to the connection's next user.
    """
    async with pool.acquire() as conn:
        row = await conn.fetchrow(query, *args)
        conn.mark_stateless_use()
        return row


async def open_connections(pool: asyncpg.Pool, count: int) -> None:
    """Opens `count` of the pool's connections now (they stay open, as connections the pool made
    on demand do), so that the first busy second after a start does not wait for their
    handshakes and set-up."""
    held = await asyncio.gather(*(pool.acquire() for _ in range(count)))
    for conn in held:
        await pool.release(conn)


async def close_pool(pool: asyncpg.Pool) -> None:
    """Close the pool, waiting CLOSE_TIMEOUT_S at most for the connections in use (asyncpg's
    close waits for ever for one a stuck task holds); past that, terminate them."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await pool.close()
    except TimeoutError:
        log.warning("database pool still in use after %.0fs; terminated", CLOSE_TIMEOUT_S)
        pool.terminate()


async def fetch(pool: asyncpg.Pool, query: str, *args: Any) -> list[asyncpg.Record]:
    """All rows of one read-only statement; as `fetchrow`."""
    async with pool.acquire() as conn:
        rows: list[asyncpg.Record] = await conn.fetch(query, *args)
        conn.mark_stateless_use()
        return rows


async def execute(pool: asyncpg.Pool, query: str, *args: Any) -> str:
    """One statement that leaves no session state (an INSERT or UPDATE in its own implicit
    transaction), on a pooled connection given back without a reset; as `fetchrow`."""
    async with pool.acquire() as conn:
        status: str = await conn.execute(query, *args)
        conn.mark_stateless_use()
        return status


async def connect(dsn: str, settings: Settings) -> asyncpg.Connection:
    """A single connection for a CLI command, set up like the pool's."""
    conn = await asyncpg.connect(
        dsn, timeout=CONNECT_TIMEOUT_S, server_settings=server_settings(settings)
    )
    await init_connection(conn)
    return conn


def server_settings(settings: Settings) -> dict[str, str]:
    """Session parameters sent when a connection opens.

    They go in the startup packet rather than in SET statements because the pool runs RESET ALL
    whenever a connection is released, which returns parameters to these values, not to the
    server's defaults.
    """
    return {
        "application_name": APPLICATION_NAME,
        "lock_timeout": str(settings.lock_timeout_ms),
        "statement_timeout": str(settings.statement_timeout_ms),
        # The ledger's statements are short; JIT compiling a wide batch statement costs more
        # than running it.
        "jit": "off",
        # Every producer of events reads these in SQL, so that none needs the settings handed
        # down to it: BILLFOLD_OUTBOX=false means no event row from any of them.
        OUTBOX_SETTING: "on" if settings.outbox else "off",
        PARTITIONS_SETTING: str(settings.events_partitions),
    }


async def init_connection(conn: asyncpg.Connection) -> None:
    """Decode json and jsonb with orjson, in and out."""
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        format="binary",
    )
    await conn.set_type_codec(
        "json",
        schema="pg_catalog",
        encoder=_encode_json,
        decoder=orjson.loads,
        format="text",
    )


def dsn_for_database(dsn: str, database: str) -> str:
    """The same DSN, naming another database on the same server."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _encode_jsonb(value: Any) -> bytes:
    return _JSONB_VERSION + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


def _encode_json(value: Any) -> str:
    return orjson.dumps(value).decode()
