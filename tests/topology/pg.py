"""A PostgreSQL 15 primary and a streaming replica made from it with pg_basebackup (-R), on free
loopback ports under a temporary directory, for tests of the topology (replica reads, a paused
or stopped replica). Debian's binaries (postgresql-15); run as the `postgres` user when the
tests run as root, since PostgreSQL refuses to run as root.

    with streaming_pair() as pair:
        pair.primary.url("postgres"), pair.replica.url("postgres")
        pair.replica.stop(); pair.replica.start()

Fast settings (fsync off): for tests only. Everything started is stopped, and the directory
removed, when the block ends.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BIN = Path(os.environ.get("BILLFOLD_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "postgres"
TIMEOUT_S = 60  # the longest one command (initdb, a base backup, a start) may take
SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockets}'
fsync = off
full_page_writes = off
max_connections = 60
shared_buffers = 32MB
wal_level = replica
max_wal_senders = 4
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
"""


def available() -> str | None:
    """Why a pair cannot be started here (the reason), or None when it can."""
    if not (BIN / "pg_basebackup").exists():
        return f"PostgreSQL 15 binaries not found in {BIN} (apt-get install postgresql-15)"
    return None


@dataclass
class Server:
    """One server of the pair: its data directory and loopback port."""

    data: Path
    port: int

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        _run("pg_ctl", "-D", str(self.data), "-l", f"{self.data}.log", "-w", "start")

    def stop(self) -> None:
        """Stop it at once (no checkpoint: a standby restarts from where it was)."""
        _run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def processes(self) -> list[int]:
        """The server's postmaster and every process under it."""
        import psutil

        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        found = psutil.Process(postmaster)
        return [postmaster, *(child.pid for child in found.children(recursive=True))]

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """The server stopped dead (SIGSTOP: it hangs rather than refuses), then resumed."""
        import signal

        pids = self.processes()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)


@dataclass
class Pair:
    primary: Server
    replica: Server


@contextlib.contextmanager
def streaming_pair() -> Iterator[Pair]:
    """A primary and its streaming replica, running for the block."""
    root = Path(tempfile.mkdtemp(prefix="billfold-pg-pair-"))
    _give_to_user(root)
    primary = Server(root / "primary", _free_port())
    replica = Server(root / "replica", _free_port())
    try:
        _run("initdb", "-D", str(primary.data), "-U", USER, "--auth=trust", "-E", "UTF8", "-N")
        _configure(primary, root)
        primary.start()
        _run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", USER),
            *("-D", str(replica.data), "-R", "-X", "stream", "-N", "-c", "fast"),
        )
        _configure(replica, root)
        replica.start()
        yield Pair(primary, replica)
    finally:
        for server in (replica, primary):
            if server.running():
                with contextlib.suppress(RuntimeError):
                    server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _configure(server: Server, sockets: Path) -> None:
    """Our settings, appended: a later line wins, so the replica's replace the primary's it
    copied."""
    conf = server.data / "postgresql.conf"
    with conf.open("a") as out:
        out.write(SETTINGS.format(port=server.port, sockets=sockets))


def _run(program: str, *args: str) -> None:
    command = [str(BIN / program), *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", USER, "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if done.returncode:
        raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr[-2000:]}")


def _give_to_user(root: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(USER)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    root.chmod(0o700)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
