"""Billfold's production topology on one machine, from Debian packages, all on loopback ports:
3 `billfold serve` API nodes behind HAProxy (health-checked on /readyz, one public port), a
PostgreSQL 15 primary and a streaming replica made with pg_basebackup, Redis, and a 3-node NATS
JetStream cluster. Run it as `deploy/local-cluster up|down|status [--dir D] [--base-port P]`.

State and logs live under --dir (default ./.cluster); `up` writes cluster.json there (every
address and process id), which the tests and `billfold bench cluster` read. `up` is idempotent:
what runs is left alone, what does not is started. BILLFOLD_* variables in the environment of
`up` are handed to the API nodes (the tests set the risk rules and rate limits that way).

Ports, from the base port B (default 7400): HAProxy B, nodes B+1..B+3, PostgreSQL primary
B+10 and replica B+11, Redis B+20, NATS clients B+30..B+32, routes B+40..B+42, monitoring
B+50..B+52. HAProxy's runtime API is the unix socket haproxy.sock in the state directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
DATABASE = "billfold"
NODES = 3
NATS_SERVERS = 3
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


def say(message: str) -> None:
    print(f"local-cluster: {message}", file=sys.stderr, flush=True)


class Layout:
    """Where each component of a cluster listens and keeps its files."""

    def __init__(self, root: Path, base_port: int) -> None:
        self.root = root.resolve()
        self.base = base_port
        self.haproxy_port = base_port
        self.node_ports = [base_port + 1 + n for n in range(NODES)]
        self.primary_port = base_port + 10
        self.replica_port = base_port + 11
        self.redis_port = base_port + 20
        self.nats_ports = [base_port + 30 + n for n in range(NATS_SERVERS)]
        self.route_ports = [base_port + 40 + n for n in range(NATS_SERVERS)]
        self.monitor_ports = [base_port + 50 + n for n in range(NATS_SERVERS)]
        self.pg = self.root / "pg"
        self.primary = self.pg / "primary"
        self.replica = self.pg / "replica"
        self.logs = self.root / "logs"
        self.state = self.root / "cluster.json"
        self.haproxy_socket = self.root / "haproxy.sock"

    def dsn(self, port: int) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}"

    def urls(self) -> dict[str, object]:
        return {
            "api": f"http://127.0.0.1:{self.haproxy_port}",
            "nodes": [f"http://127.0.0.1:{p}" for p in self.node_ports],
            "database_url": self.dsn(self.primary_port),
            "database_replica_url": self.dsn(self.replica_port),
            "redis_url": f"redis://127.0.0.1:{self.redis_port}/0",
            "events_url": ",".join(f"nats://127.0.0.1:{p}" for p in self.nats_ports),
            "nats": [f"nats://127.0.0.1:{p}" for p in self.nats_ports],
            "haproxy_socket": str(self.haproxy_socket),
        }


# -- processes ---------------------------------------------------------------------------------


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own child not yet reaped) is not running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def spawn(command: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    """Start a server in the background in its own session, its output in `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return process.pid


def stop(pid: int | None, name: str) -> None:
    if not alive(pid):
        return
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        say(f"{name} ({pid}) did not stop within {STOP_TIMEOUT_S:g}s: killed")
        os.kill(pid, signal.SIGKILL)


def wait_for(what: str, check: object, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise SystemExit(f"local-cluster: {what} not ready within {timeout_s:g}s")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except OSError:
        return False


# -- PostgreSQL --------------------------------------------------------------------------------


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, the command runs as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def give_to_postgres(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
    path.chmod(0o700)


def pg_ctl(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), *args])
    return subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603


def pg_pid(data: Path) -> int | None:
    pid = read_pid(data / "postmaster.pid")
    return pid if alive(pid) else None


def pg_ready(port: int) -> bool:
    command = [str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
    return subprocess.run(command, check=False).returncode == 0  # noqa: S603


def psql(port: int, sql: str, database: str = "postgres") -> str:
    command = [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
    command += ["-d", database, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql]
    done = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
    return done.stdout.strip()


PRIMARY_CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockets}'
wal_level = replica
max_wal_senders = 10
max_connections = 200
hot_standby = on
hot_standby_feedback = on
fsync = on
synchronous_commit = on
shared_buffers = 256MB
"""
HBA = """
local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""


def start_primary(lay: Layout) -> None:
    if pg_pid(lay.primary):
        return
    if not (lay.primary / "PG_VERSION").exists():
        say("initdb: the primary")
        give_to_postgres(lay.pg)
        give_to_postgres(lay.pg / "sockets")
        give_to_postgres(lay.primary)
        command = [str(PG_BIN / "initdb"), "-D", str(lay.primary), "-U", "postgres"]
        command += ["--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]
        subprocess.run(as_postgres(command), check=True, capture_output=True)  # noqa: S603
        conf = PRIMARY_CONF.format(port=lay.primary_port, sockets=lay.pg / "sockets")
        with (lay.primary / "postgresql.conf").open("a") as out:
            out.write(conf)
        (lay.primary / "pg_hba.conf").write_text(HBA)
    log = lay.pg / "primary.log"
    done = pg_ctl(lay.primary, "-l", str(log), "-w", "-t", "60", "start")
    if done.returncode != 0:
        raise SystemExit(f"local-cluster: the primary did not start: {done.stderr} (see {log})")
    if psql(lay.primary_port, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'") != "1":
        psql(lay.primary_port, f'CREATE DATABASE "{DATABASE}"')


def start_replica(lay: Layout) -> None:
    if pg_pid(lay.replica):
        return
    if not (lay.replica / "PG_VERSION").exists():
        say("pg_basebackup: the replica")
        give_to_postgres(lay.replica)
        command = [str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(lay.primary_port)]
        command += ["-U", "postgres", "-D", str(lay.replica), "-R", "-X", "stream", "-c", "fast"]
        subprocess.run(as_postgres(command), check=True, capture_output=True)  # noqa: S603
        with (lay.replica / "postgresql.conf").open("a") as out:
            out.write(f"\nport = {lay.replica_port}\n")
    log = lay.pg / "replica.log"
    done = pg_ctl(lay.replica, "-l", str(log), "-w", "-t", "60", "start")
    if done.returncode != 0:
        raise SystemExit(f"local-cluster: the replica did not start: {done.stderr} (see {log})")


def replica_state(lay: Layout) -> str:
    """The replica's streaming state as the primary sees it, and its replay lag in bytes."""
    try:
        row = psql(
            lay.primary_port,
            "SELECT state || ' lag ' || pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)"
            " || ' bytes' FROM pg_stat_replication",
        )
    except subprocess.CalledProcessError:
        return "primary unreachable"
    return row or "not streaming"


# -- Redis, NATS -------------------------------------------------------------------------------


def start_redis(lay: Layout) -> None:
    pidfile = lay.root / "redis.pid"
    if alive(read_pid(pidfile)):
        return
    (lay.root / "redis").mkdir(parents=True, exist_ok=True)
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(lay.redis_port)]
    command += ["--save", "", "--appendonly", "no", "--dir", str(lay.root / "redis")]
    command += ["--daemonize", "yes", "--pidfile", str(pidfile)]
    command += ["--logfile", str(lay.logs / "redis.log")]
    subprocess.run(command, check=True)  # noqa: S603
    wait_for("Redis", lambda: port_open(lay.redis_port))


NATS_CONF = """
server_name: n{n}
listen: 127.0.0.1:{port}
http: 127.0.0.1:{monitor}
jetstream {{ store_dir: "{store}" }}
cluster {{
  name: billfold
  listen: 127.0.0.1:{route}
  routes: [{routes}]
}}
"""


def start_nats(lay: Layout) -> None:
    routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in lay.route_ports)
    for n in range(NATS_SERVERS):
        pidfile = lay.root / f"nats-{n + 1}.pid"
        if alive(read_pid(pidfile)):
            continue
        conf = lay.root / f"nats-{n + 1}.conf"
        store = lay.root / f"nats-{n + 1}"
        conf.write_text(
            NATS_CONF.format(
                n=n + 1,
                port=lay.nats_ports[n],
                monitor=lay.monitor_ports[n],
                route=lay.route_ports[n],
                routes=routes,
                store=store,
            )
        )
        pid = spawn(["nats-server", "-c", str(conf)], lay.logs / f"nats-{n + 1}.log")
        pidfile.write_text(str(pid))
    for port in lay.monitor_ports:
        url = f"http://127.0.0.1:{port}/healthz?js-enabled-only=true"
        wait_for(f"NATS on {port}", lambda url=url: http_ok(url))
    asyncio.run(replicated_stream(lay))


async def replicated_stream(lay: Layout) -> None:
    """The events stream, kept by all three servers (R3), made before any node makes its own
    (with one replica, the stream would stop with the server that holds it)."""
    import nats
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import StreamConfig
    from nats.js.errors import BadRequestError, ServiceUnavailableError

    from billfold.events.brokers import NATS_STREAM, NATS_SUBJECTS

    config = StreamConfig(name=NATS_STREAM, subjects=[NATS_SUBJECTS], num_replicas=NATS_SERVERS)
    client = await nats.connect([f"nats://127.0.0.1:{p}" for p in lay.nats_ports])
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:  # the cluster elects its meta leader a moment after the servers are up
            try:
                try:
                    await client.jetstream().add_stream(config)
                except BadRequestError:
                    await client.jetstream().update_stream(config)
                return
            except (ServiceUnavailableError, NatsTimeout):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await client.close()


# -- the API nodes and HAProxy -----------------------------------------------------------------


def node_env(lay: Layout, n: int, secret_key: str) -> dict[str, str]:
    urls = lay.urls()
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("BILLFOLD_TEST")},
        "DATABASE_URL": str(urls["database_url"]),
        "DATABASE_REPLICA_URL": str(urls["database_replica_url"]),
        "REDIS_URL": str(urls["redis_url"]),
        "BILLFOLD_EVENTS_URL": str(urls["events_url"]),
        "BILLFOLD_SECRET_KEY": secret_key,
        "BILLFOLD_PORT": str(lay.node_ports[n]),
        "BILLFOLD_HOST": "127.0.0.1",
        "BILLFOLD_DATA_DIR": str(lay.root / f"node-{n + 1}"),
        # `up` migrates once before the nodes start.
        "BILLFOLD_MIGRATE_ON_START": "false",
    }


def billfold_command() -> list[str]:
    found = os.environ.get("BILLFOLD_BIN") or shutil.which("billfold")
    if found:
        return [found]
    return [sys.executable, "-c", "from billfold.cli import main; main()"]


def start_nodes(lay: Layout, secret_key: str) -> None:
    migrate = {**node_env(lay, 0, secret_key)}
    with (lay.logs / "migrate.log").open("ab") as log:
        command = [*billfold_command(), "migrate"]
        subprocess.run(command, env=migrate, check=True, stdout=log)  # noqa: S603
    for n in range(NODES):
        pidfile = lay.root / f"node-{n + 1}.pid"
        if alive(read_pid(pidfile)):
            continue
        env = node_env(lay, n, secret_key)
        pid = spawn([*billfold_command(), "serve"], lay.logs / f"node-{n + 1}.log", env)
        pidfile.write_text(str(pid))
    for port in lay.node_ports:
        wait_for(f"node on {port}", lambda port=port: http_ok(f"http://127.0.0.1:{port}/readyz"))


HAPROXY_CONF = """
global
    stats socket {socket} mode 600 level admin
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 30s
    # A request that could not reach a node (connection refused, or the node died before it
    # answered) goes to another: a POST carries its Idempotency-Key, so it runs once.
    retries 2
    option redispatch
    retry-on conn-failure empty-response
    option http-keep-alive

frontend api
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    default-server check inter 500ms fall 2 rise 2
{servers}
"""


def start_haproxy(lay: Layout) -> None:
    pidfile = lay.root / "haproxy.pid"
    if alive(read_pid(pidfile)):
        return
    servers = "\n".join(
        f"    server node{n + 1} 127.0.0.1:{port}" for n, port in enumerate(lay.node_ports)
    )
    conf = lay.root / "haproxy.cfg"
    conf.write_text(
        HAPROXY_CONF.format(socket=lay.haproxy_socket, port=lay.haproxy_port, servers=servers)
    )
    command = ["haproxy", "-f", str(conf), "-p", str(pidfile), "-D"]
    subprocess.run(command, check=True)  # noqa: S603
    wait_for("HAProxy", lambda: http_ok(f"http://127.0.0.1:{lay.haproxy_port}/readyz"))


def haproxy_command(lay: Layout, command: str) -> str:
    """One command to HAProxy's runtime API ("show stat", "disable server nodes/node3", ...)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(lay.haproxy_socket))
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def backend_states(lay: Layout) -> dict[str, str]:
    states = {}
    for line in haproxy_command(lay, "show stat").splitlines():
        fields = line.split(",")
        if len(fields) > 17 and fields[0] == "nodes" and fields[1].startswith("node"):
            states[fields[1]] = fields[17]
    return states


# -- the commands ------------------------------------------------------------------------------


def pids(lay: Layout) -> dict[str, object]:
    return {
        "haproxy": read_pid(lay.root / "haproxy.pid"),
        "nodes": [read_pid(lay.root / f"node-{n + 1}.pid") for n in range(NODES)],
        "primary": pg_pid(lay.primary),
        "replica": pg_pid(lay.replica),
        "redis": read_pid(lay.root / "redis.pid"),
        "nats": [read_pid(lay.root / f"nats-{n + 1}.pid") for n in range(NATS_SERVERS)],
    }


def up(lay: Layout) -> dict[str, object]:
    lay.root.mkdir(parents=True, exist_ok=True)
    lay.logs.mkdir(exist_ok=True)
    key_file = lay.root / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(48))
        key_file.chmod(0o600)
    say("PostgreSQL primary and replica")
    start_primary(lay)
    start_replica(lay)
    say("Redis")
    start_redis(lay)
    say("NATS JetStream cluster")
    start_nats(lay)
    say("API nodes")
    start_nodes(lay, key_file.read_text().strip())
    say("HAProxy")
    start_haproxy(lay)
    state = {
        "dir": str(lay.root),
        "base_port": lay.base,
        "secret_key_file": str(key_file),
        **lay.urls(),
        "pids": pids(lay),
        "logs": str(lay.logs),
    }
    lay.state.write_text(json.dumps(state, indent=2))
    return state


def status(lay: Layout) -> dict[str, str]:
    running = pids(lay)
    health: dict[str, str] = {}
    haproxy_up = alive(running["haproxy"])  # type: ignore[arg-type]
    health["haproxy"] = "up" if haproxy_up else "down"
    backends = backend_states(lay) if haproxy_up else {}
    for n, port in enumerate(lay.node_ports):
        ready = http_ok(f"http://127.0.0.1:{port}/readyz")
        seen = backends.get(f"node{n + 1}", "-")
        health[f"node{n + 1}"] = f"{'ready' if ready else 'down'} (haproxy: {seen})"
    health["primary"] = "up" if pg_ready(lay.primary_port) else "down"
    replica_up = pg_ready(lay.replica_port)
    health["replica"] = f"up, {replica_state(lay)}" if replica_up else "down"
    health["redis"] = "up" if port_open(lay.redis_port) else "down"
    for n, port in enumerate(lay.monitor_ports):
        ok = http_ok(f"http://127.0.0.1:{port}/healthz?js-enabled-only=true")
        health[f"nats{n + 1}"] = "up" if ok else "down"
    return health


def down(lay: Layout) -> None:
    stop(read_pid(lay.root / "haproxy.pid"), "haproxy")
    for n in range(NODES):
        stop(read_pid(lay.root / f"node-{n + 1}.pid"), f"node{n + 1}")
    for n in range(NATS_SERVERS):
        stop(read_pid(lay.root / f"nats-{n + 1}.pid"), f"nats{n + 1}")
    stop(read_pid(lay.root / "redis.pid"), "redis")
    for data in (lay.replica, lay.primary):
        if pg_pid(data):
            pg_ctl(data, "-w", "-t", "60", "-m", "fast", "stop")


def main() -> None:
    parser = argparse.ArgumentParser(prog="deploy/local-cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=Path(".cluster"), help="state and logs")
    parser.add_argument("--base-port", type=int, default=7400)
    options = parser.parse_args()
    lay = Layout(options.dir, options.base_port)
    if options.command == "up":
        state = up(lay)
        print(json.dumps({k: v for k, v in state.items() if k != "pids"}, indent=2))
    elif options.command == "status":
        health = status(lay)
        for name, outcome in health.items():
            print(f"{name:<9} {outcome}")
        if any(o.startswith("down") for o in health.values()):
            raise SystemExit(1)
    else:
        down(lay)
        say("stopped")


if __name__ == "__main__":
    main()
