"""Billfold processes on one data dir share one embedded PostgreSQL and one embedded Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# A billfold process in miniature: attach to the embedded servers, write a row and a key named
# after itself, report, wait for the test to say go, then report what it can read.
_PROCESS = """
import asyncio, json, sys
import asyncpg, redis
from billfold.config import Settings
from billfold.platform.embedded import ensure_database, ensure_redis

name = sys.argv[1]
settings = Settings()
dsn, redis_url = ensure_database(settings), ensure_redis(settings)
client = redis.Redis.from_url(redis_url, decode_responses=True)

async def main():
    conn = await asyncpg.connect(dsn)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(1)")
        await conn.execute("CREATE TABLE IF NOT EXISTS writers (name text PRIMARY KEY)")
        await conn.execute("INSERT INTO writers VALUES ($1)", name)
    client.set(f"writer:{name}", name)
    print(json.dumps({"dsn": dsn, "redis": redis_url}), flush=True)
    sys.stdin.readline()
    rows = await conn.fetch("SELECT name FROM writers ORDER BY name")
    keys = sorted(client.keys("writer:*"))
    print(json.dumps({"rows": [r["name"] for r in rows], "keys": keys}), flush=True)
    await conn.close()

asyncio.run(main())
client.close()
"""


def start(name: str, data_dir: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["BILLFOLD_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(
        [sys.executable, "-c", _PROCESS, name],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def report(process: subprocess.Popen[str]) -> dict[str, object]:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"process exited early with {process.wait(timeout=30)}"
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_two_processes_share_the_embedded_servers(tmp_path: Path) -> None:
    """Started at the same moment on a new data dir, both attach to one server of each kind,
    each reads what the other wrote, and the servers stop when the last process exits."""
    data_dir = tmp_path / "data"
    # Leaving the with-block closes the pipes; a child then reads end-of-file and exits.
    with start("first", data_dir) as first, start("second", data_dir) as second:
        first_urls, second_urls = report(first), report(second)
        assert first_urls == second_urls
        for process in (first, second):
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        seen = [report(first), report(second)]
        exit_codes = [first.wait(timeout=60), second.wait(timeout=60)]
    expected = {"rows": ["first", "second"], "keys": ["writer:first", "writer:second"]}
    assert seen == [expected, expected]
    assert exit_codes == [0, 0]
    assert not (data_dir / "pg" / "postmaster.pid").exists()
    assert not Path(str(first_urls["redis"]).removeprefix("unix://")).exists()
