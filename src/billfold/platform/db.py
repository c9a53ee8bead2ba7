"""asyncpg connections and pools, configured the same way for the service and the CLI."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

from billfold.config import Settings

APPLICATION_NAME = "billfold"
CONNECT_TIMEOUT_S = 10.0
# The first byte of a binary jsonb value is its format version; PostgreSQL only knows 1.
_JSONB_VERSION = b"\x01"


async def create_pool(dsn: str, settings: Settings) -> asyncpg.Pool:
    """A pool of settings.db_pool_min..db_pool_max connections, each set up by `init_connection`."""
    return await asyncpg.create_pool(
        dsn,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        timeout=CONNECT_TIMEOUT_S,
        server_settings=server_settings(settings),
        init=init_connection,
    )


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
