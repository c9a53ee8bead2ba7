"""Faults on the local cluster under load (deploy/local-cluster): an API node killed, a NATS
server killed, the replica paused, the primary restarted. Every transfer a client sent is
answered (retried with its Idempotency-Key), none is lost or done twice, and the ledger
reconciles."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import nats
import orjson

from billfold.config import Settings
from billfold.events.brokers import NATS_STREAM
from billfold.ledger.reconcile import reconcile
from billfold.platform.db import create_pool
from billfold_bench.cluster import measure
from billfold_bench.http import Connection
from tests.cluster.conftest import PEOPLE, Cluster, Outcome, load

PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"
SETTLE_WITHIN_S = 30.0


P2P_COUNT = "SELECT count(*) FROM transfers WHERE code = 'p2p'"


async def p2p_count(cluster: Cluster) -> int:
    """(Transfer ids are not in time order across nodes: each reserves a block of its own.)"""
    connection = await cluster.connect()
    try:
        return int(await connection.fetchval(P2P_COUNT))
    finally:
        await connection.close()


async def assert_exactly_once(cluster: Cluster, outcome: Outcome, count_before: int) -> None:
    """Every acknowledged transfer is in the ledger once, nothing else was made, and the
    ledger reconciles."""
    settings = Settings().model_copy(update={"database_url": cluster.state["database_url"]})
    pool = await create_pool(cluster.state["database_url"], settings)
    try:
        acked = [int(t) for t in outcome.acked.values()]
        assert acked, "no transfer was acknowledged"
        assert len(set(acked)) == len(acked)  # each key its own transfer
        found = await pool.fetchval(
            "SELECT count(*) FROM transfers WHERE code = 'p2p' AND id = ANY($1::bigint[])", acked
        )
        assert found == len(acked)  # 0 lost
        assert await pool.fetchval(P2P_COUNT) - count_before == len(acked)  # 0 duplicated
        report = await reconcile(pool)
        assert report.ok, report.render()
    finally:
        await pool.close()


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


async def wait_until(what: str, check: Any, within_s: float = SETTLE_WITHIN_S) -> None:
    deadline = time.monotonic() + within_s
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within_s:g}s")
        await asyncio.sleep(0.1)


def haproxy_sees(cluster: Cluster, server: str, state: str) -> bool:
    """Whether HAProxy's runtime API shows backend `server` in `state` (UP, DOWN)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(cluster.state["haproxy_socket"])
        sock.sendall(b"show stat\n")
        stat = sock.makefile().read()
    for line in stat.splitlines():
        fields = line.split(",")
        if len(fields) > 17 and fields[0] == "nodes" and fields[1] == server:
            return fields[17].startswith(state)
    return False


async def test_killed_api_node_loses_and_duplicates_nothing(cluster: Cluster) -> None:
    """A node killed mid-load: HAProxy routes around it, the client retries what it had in
    flight with the same keys, and every transfer happens exactly once."""
    since = await p2p_count(cluster)
    victim = cluster.state["pids"]["nodes"][1]

    async def kill_node() -> None:
        os.killpg(victim, signal.SIGKILL)  # the node and its workers, with requests in flight

    outcome = await load(cluster, 4.0, kill_node)
    await wait_until("HAProxy marks node2 down", lambda: haproxy_sees(cluster, "node2", "DOWN"))
    await assert_exactly_once(cluster, outcome, since)
    await asyncio.to_thread(cluster.up)  # brings the node back (up is idempotent)
    await wait_until("node2 back in HAProxy", lambda: haproxy_sees(cluster, "node2", "UP"))


async def test_killed_nats_server_events_keep_flowing(cluster: Cluster) -> None:
    """The JetStream server leading the events stream killed mid-load: transfers go on, and
    the event of every one of them reaches the (replicated) stream from the servers left."""
    since = await p2p_count(cluster)
    servers: list[str] = cluster.state["nats"]
    reader = await nats.connect(servers)
    try:
        stream = reader.jetstream()
        info = await stream.stream_info(NATS_STREAM)
        first_seq = info.state.last_seq + 1
        leader = info.cluster.leader if info.cluster else "n1"
        victim = cluster.state["pids"]["nats"][int(leader.removeprefix("n")) - 1]

        async def kill_nats() -> None:
            os.kill(victim, signal.SIGKILL)

        outcome = await load(cluster, 4.0, kill_nats)
        await assert_exactly_once(cluster, outcome, since)
        wanted = set(outcome.acked.values())
        seen: set[str] = set()
        seq = first_seq
        deadline = time.monotonic() + SETTLE_WITHIN_S
        while not wanted <= seen:
            assert time.monotonic() < deadline, f"{len(wanted - seen)} events never arrived"
            try:
                last = (await stream.stream_info(NATS_STREAM)).state.last_seq
            except nats.errors.Error:
                last = seq - 1  # the stream elects a new leader
            while seq <= last:
                message = await stream.get_msg(NATS_STREAM, seq)
                event = orjson.loads(message.data or b"{}")
                if event.get("type") == "billfold.transfer.completed.v1":
                    seen.add(str(event["data"]["transfer_id"]))
                seq += 1
            if not wanted <= seen:
                await asyncio.sleep(0.2)
    finally:
        await reader.close()
    await asyncio.to_thread(cluster.up)


def replica_processes(cluster: Cluster) -> list[int]:
    """The replica's postmaster and its children."""
    data = Path(cluster.state["dir"]) / "pg" / "replica"
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            children.append(int(stat.parent.name))
    return [postmaster, *children]


async def test_paused_replica_keeps_own_writes_in_history(cluster: Cluster) -> None:
    """With the replica stopped (SIGSTOP) mid-load, each person's history, read right after
    their transfer, shows it. (Until replica reads land, history is read from the primary.)"""
    since = await p2p_count(cluster)
    paused: list[int] = []
    missing: list[str] = []

    async def pause_replica() -> None:
        paused.extend(replica_processes(cluster))
        for pid in paused:
            os.kill(pid, signal.SIGSTOP)

    async def read_own_history(
        connection: Connection, headers: dict[str, str], made: dict[str, Any]
    ) -> None:
        path = f"/api/v1/wallet/{made['sender_id']}/transactions?limit=5"
        auth = {"Authorization": headers["Authorization"]}
        async with asyncio.timeout(15):
            status, answer = await connection.request("GET", path, auth)
        assert status == 200, answer[:300]
        ids = [t["id"] for t in orjson.loads(answer)["transactions"]]
        if made["transfer_id"] not in ids:
            missing.append(made["transfer_id"])

    try:
        outcome = await load(cluster, 4.0, pause_replica, after_each=read_own_history)
    finally:
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
    assert paused, "the replica was not paused"
    assert missing == []
    await assert_exactly_once(cluster, outcome, since)


async def test_restarted_primary_loses_nothing_acknowledged(cluster: Cluster) -> None:
    """The primary restarted mid-load: the nodes reconnect, every transfer is answered once
    retried, and every acknowledged one is in the ledger exactly once."""
    since = await p2p_count(cluster)
    data = Path(cluster.state["dir"]) / "pg" / "primary"
    restarted_at: list[float] = []

    async def restart_primary() -> None:
        # The server's output goes to its log: a pipe of ours would be held open by it.
        log = data.parent / "primary.log"
        command = ["runuser", "-u", "postgres", "--", PG_CTL, "-D", str(data), "-l", str(log)]
        command += ["-w", "-t", "60", "-m", "fast", "restart"]
        if os.geteuid() != 0:
            command = command[4:]
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        await asyncio.to_thread(subprocess.run, command, check=True, timeout=90, **quiet)
        restarted_at.append(time.monotonic())

    outcome = await load(cluster, 6.0, restart_primary)
    assert restarted_at, "the primary was not restarted"
    await assert_exactly_once(cluster, outcome, since)
    for url in cluster.state["nodes"]:
        await wait_until(f"{url} ready", lambda url=url: http_status(f"{url}/readyz") == 200)
    await asyncio.to_thread(cluster.up)  # the primary's new process id, for what follows


async def test_bench_cluster_reports_each_tier_for_one_to_three_nodes(cluster: Cluster) -> None:
    """`billfold bench cluster`'s measuring, briefly, on the module's cluster: a rate and a CPU
    cost for every tier with 1, 2 and 3 nodes, and a ledger that reconciles."""
    settings = Settings().model_copy(update={"database_url": cluster.state["database_url"]})
    result = await measure(
        settings, cluster.state, PEOPLE, clients=4, seconds=1.0, warmup=0.0, runs=1, idle_s=0.5
    )
    assert result["reconciled"]
    assert sorted(result["nodes"]) == ["1", "2", "3"]
    for figures in result["nodes"].values():
        assert figures["transfers_per_s"] > 0
        assert figures["errors"] == 0
        costs = figures["cpu_us_per_transfer"]
        assert all(costs[tier] is not None for tier in ("api", "postgresql", "nats", "haproxy"))
