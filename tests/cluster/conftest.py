"""The local cluster (deploy/local-cluster), started once for a module of tests and stopped in a
finally, with people signed up and funded on its primary, and a load generator that retries
what it sent with the same Idempotency-Key until it gets an answer.

CI runs these in its first pass only (.ci/run sets BILLFOLD_TEST_CLUSTER=0 for the second): the
cluster starts its own servers and uses neither the embedded nor the machine's stack."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from billfold.config import Settings
from billfold_bench.api import seed_people
from billfold_bench.http import Connection
from billfold_bench.rules import LOAD_TEST_RULES
from billfold_bench.seed import migrated_pool
from billfold_bench.traffic import AppTokens, app_tokens, transfer_request

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "local-cluster"
PEOPLE = 200
# What a client retries with the same key: refused while the key's first request still runs
# (409), the node or its database unavailable (5xx), or no answer at all (the node died).
RETRYABLE = {409, 500, 502, 503, 504}
RETRY_PAUSE_S = 0.1
# A request is retried at most this long before the test fails.
ANSWER_WITHIN_S = 60.0
REQUEST_TIMEOUT_S = 15.0
# Ports the cluster may use: a base port B takes B .. B+52.
PORT_SPAN = 60

# The nodes are run as the load tests run the server (bench.server): no rate limits, risk rules
# a load cannot trip, quiet logs.
NODE_SETTINGS = {
    "BILLFOLD_LOGIN_LIMIT_PER_ADDRESS": "0",
    "BILLFOLD_MONEY_LIMIT_PER_USER": "0",
    "BILLFOLD_MONEY_LIMIT_PER_ADDRESS": "0",
    "BILLFOLD_LOG_LEVEL": "WARNING",
    "BILLFOLD_RISK_RULES": LOAD_TEST_RULES.model_dump_json(exclude_defaults=True),
}


def cluster_skip_reason() -> str | None:
    if os.environ.get("BILLFOLD_TEST_CLUSTER", "1") == "0":
        return "BILLFOLD_TEST_CLUSTER=0 (CI runs the cluster's tests in its first pass only)"
    missing = [c for c in ("haproxy", "nats-server", "redis-server") if not shutil.which(c)]
    if missing:
        return f"not installed: {', '.join(missing)}"
    return None


def free_base_port() -> int:
    """A base port whose whole span is free on loopback now."""
    rng = random.Random()
    for _ in range(50):
        base = rng.randrange(20_000, 40_000, PORT_SPAN)
        if all(_port_free(base + n) for n in range(PORT_SPAN)):
            return base
    raise RuntimeError("no free span of ports found")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class Cluster:
    state: dict[str, Any]
    people: list[str]
    tokens: AppTokens
    directory: Path
    base_port: int

    @property
    def port(self) -> int:
        return self.base_port

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **NODE_SETTINGS}
        command = [str(SCRIPT), *args, "--dir", str(self.directory)]
        command += ["--base-port", str(self.base_port)]
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=180, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"local-cluster {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done

    def up(self) -> None:
        self.command("up")
        self.state = json.loads((self.directory / "cluster.json").read_text())

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.state["database_url"])


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[Cluster]:
    reason = cluster_skip_reason()
    if reason:
        pytest.skip(reason)
    # Not pytest's tmp_path: its parents are private to the user running the tests, and
    # PostgreSQL runs as its own user beneath this directory.
    directory = Path(tempfile.mkdtemp(prefix="billfold-cluster-"))
    os.chmod(directory, 0o755)  # noqa: S103
    running = Cluster({}, [], AppTokens([], []), directory, free_base_port())
    try:
        await asyncio.to_thread(running.up)
        settings = Settings().model_copy(
            update={
                "database_url": running.state["database_url"],
                "redis_url": running.state["redis_url"],
            }
        )
        pool = await migrated_pool(running.state["database_url"], settings)
        try:
            running.people = await seed_people(pool, settings, PEOPLE)
        finally:
            await pool.close()
        key_file = Path(running.state["secret_key_file"])
        key = (await asyncio.to_thread(key_file.read_text)).strip()
        running.tokens = app_tokens(running.people, key, 3600)
        yield running
    finally:
        command = [str(SCRIPT), "down", "--dir", str(directory)]
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            print(done.stderr)
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Outcome:
    """What a load run saw: each acknowledged transfer by its key, and each status seen."""

    acked: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> transfer_id
    senders: dict[str, str] = field(default_factory=dict)  # transfer_id -> sender's user id
    statuses: dict[int, int] = field(default_factory=dict)
    retries: int = 0


async def send_until_answered(
    connection: Connection, path: str, headers: dict[str, str], body: bytes, outcome: Outcome
) -> tuple[int, bytes]:
    """POST until an answer that is not worth retrying, always with the same headers (the
    same Idempotency-Key): what an app does when its connection drops or a node is gone."""
    deadline = time.monotonic() + ANSWER_WITHIN_S
    while True:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                status, answer = await connection.request("POST", path, headers, body)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            status, answer = 0, b""
        outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
        if status not in RETRYABLE and status != 0:
            return status, answer
        if time.monotonic() > deadline:
            raise AssertionError(f"no answer within {ANSWER_WITHIN_S:g}s (last status {status})")
        outcome.retries += 1
        await connection.close()
        await asyncio.sleep(RETRY_PAUSE_S)  # a client's back-off, not a synchronisation


async def load(
    cluster: Cluster,
    seconds: float,
    fault: Callable[[], Awaitable[None]],
    *,
    clients: int = 8,
    fault_after_s: float = 1.0,
    after_each: Callable[[Connection, dict[str, str], dict[str, Any]], Awaitable[None]]
    | None = None,
) -> Outcome:
    """`clients` connections through HAProxy send P2P transfers for `seconds`; `fault` runs
    `fault_after_s` in. Every transfer sent is answered (retried with its key) before this
    returns. `after_each(connection, headers, body)` runs after each acknowledged one."""
    outcome = Outcome()
    stop_at = time.monotonic() + seconds

    async def client(n: int) -> None:
        rng = random.Random(n)
        connection = Connection("127.0.0.1", cluster.port)
        try:
            while time.monotonic() < stop_at:
                headers, body = transfer_request(rng, cluster.people, cluster.tokens)
                path = "/api/v1/transfers"
                status, answer = await send_until_answered(connection, path, headers, body, outcome)
                if status != 201:
                    raise AssertionError(f"transfer refused: {status} {answer[:300]!r}")
                made = orjson.loads(answer)
                key = headers["Idempotency-Key"]
                outcome.acked[key] = made["transfer_id"]
                outcome.senders[made["transfer_id"]] = made["sender_id"]
                if after_each is not None:
                    await after_each(connection, headers, made)
        finally:
            await connection.close()

    async def inject() -> None:
        await asyncio.sleep(fault_after_s)
        await fault()

    await asyncio.gather(inject(), *(client(n) for n in range(clients)))
    return outcome
