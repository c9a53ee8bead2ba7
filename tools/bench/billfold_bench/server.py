"""The server a benchmark drives: `billfold serve` started as a separate process, as a user
would run it (workers included), on a free port and a Redis database of the benchmarks' own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping

from billfold_bench.http import Connection
from billfold_bench.rules import LOAD_TEST_RULES

BENCH_REDIS_DB = 9


def bench_redis(url: str) -> str:
    """A Redis database of the benchmark's own, so its cached balances meet no other data."""
    if url.startswith("unix://"):
        return url.split("?", 1)[0] + f"?db={BENCH_REDIS_DB}"
    base, _, _db = url.rpartition("/")
    return f"{base}/{BENCH_REDIS_DB}" if base.count("/") >= 2 else f"{url}/{BENCH_REDIS_DB}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    database_url: str,
    redis_url: str,
    key: str,
    port: int,
    workers: int,
    settings: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`settings`: more BILLFOLD_* variables, over the benchmarks' own."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "BILLFOLD_SECRET_KEY": key,
        "BILLFOLD_PORT": str(port),
        "BILLFOLD_WORKERS": str(workers),
        # The load comes from one address and a few users at a high rate; the limits would
        # refuse it. Request logs are off: writing 5,000 JSON lines a second is its own load.
        "BILLFOLD_LOGIN_LIMIT_PER_ADDRESS": "0",
        "BILLFOLD_MONEY_LIMIT_PER_USER": "0",
        "BILLFOLD_MONEY_LIMIT_PER_ADDRESS": "0",
        "BILLFOLD_LOG_LEVEL": "WARNING",
        # Scoring stays on, model included, with thresholds a load test can't reach.
        "BILLFOLD_RISK_RULES": LOAD_TEST_RULES.model_dump_json(exclude_defaults=True),
        **(settings or {}),
    }
    command = [sys.executable, "-c", "from billfold.cli import main; main()", "serve"]
    return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)  # noqa: S603


async def wait_ready(port: int, server: subprocess.Popen[bytes]) -> None:
    connection = Connection("127.0.0.1", port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with status {server.returncode}")
        try:
            status, _ = await connection.request("GET", "/readyz", {})
            if status == 200:
                await connection.close()
                return
        except OSError:
            await connection.close()
        await asyncio.sleep(0.2)
    raise TimeoutError("the server did not become ready within 60 s")


@contextlib.asynccontextmanager
async def running_server(
    database_url: str,
    redis_url: str,
    key: str,
    workers: int,
    settings: Mapping[str, str] | None = None,
) -> AsyncIterator[tuple[int, subprocess.Popen[bytes]]]:
    """`billfold serve` on a free port and the benchmarks' own Redis database (bench_redis),
    ready; stopped on the way out. Yields its port and process. `settings`: see start_server."""
    port = free_port()
    server = start_server(database_url, bench_redis(redis_url), key, port, workers, settings)
    try:
        await wait_ready(port, server)
        yield port, server
    finally:
        server.terminate()
        server.wait(timeout=30)
