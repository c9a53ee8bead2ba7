"""The local mail sink: with no BILLFOLD_SMTP_URL, email goes to a real SMTP server (aiosmtpd)
run inside the service, which keeps each message as a file, `data_dir/mail/<id>.eml`, for
`billfold mail list` and `billfold mail show ID` to read.

One process on a data dir runs it at a time: the first to take the lock on `mail/sink.lock`
(an flock, given back by the system when its holder exits, however it exits) serves on a port
of 127.0.0.1 it is given, and writes the address to `mail/sink.json`, where the others (every
`billfold serve` worker, the tests' apps) read it. When the holder is gone, the next process
that sends takes the lock and serves in its stead. At most KEEP messages are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import IO

from aiosmtpd.smtp import SMTP, Envelope, Session

MAIL_DIR = "mail"
ADDRESS_FILE = "sink.json"
LOCK_FILE = "sink.lock"
SUFFIX = ".eml"
# The messages kept: past it, the oldest are deleted (checked every PRUNE_EVERY messages).
KEEP = 1000
PRUNE_EVERY = 50
# The largest message the sink takes.
MAX_MESSAGE_BYTES = 1024 * 1024
HOST = "127.0.0.1"
_ID = re.compile(r"^[0-9]{8}T[0-9]{12}Z-[0-9a-f]{8}$")


def mail_dir(data_dir: Path) -> Path:
    return data_dir.resolve() / MAIL_DIR


class _Keep:
    """aiosmtpd's handler: each message received written to its file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.saved = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        await asyncio.to_thread(self._save, content)
        return "250 OK: kept"

    def _save(self, content: bytes) -> None:
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(4)}"
        partial = self.folder / f".{name}.part"
        partial.write_bytes(content)
        partial.replace(self.folder / f"{name}{SUFFIX}")
        self.saved += 1
        if self.saved % PRUNE_EVERY == 0:
            prune(self.folder)


def prune(folder: Path, keep: int = KEEP) -> int:
    """Delete the oldest messages past `keep`; how many."""
    names = sorted(folder.glob(f"*{SUFFIX}"))
    for path in names[: max(0, len(names) - keep)]:
        path.unlink(missing_ok=True)
    return max(0, len(names) - keep)


@dataclass
class Sink:
    """The sink this process serves, and its hold on the lock that makes it the only one."""

    server: asyncio.Server
    lock: IO[str]
    address: tuple[str, int]

    async def close(self) -> None:
        self.server.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.server.wait_closed(), 5)
        fcntl.flock(self.lock, fcntl.LOCK_UN)
        self.lock.close()


async def take_sink(data_dir: Path) -> Sink | None:
    """Serve the sink of `data_dir` from this process, unless another process does (None)."""
    folder = mail_dir(data_dir)
    lock = _take_lock(folder)
    if lock is None:
        return None
    # aiosmtpd logs each connection and command at INFO.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    loop = asyncio.get_running_loop()
    keep = _Keep(folder)
    try:
        server = await loop.create_server(
            lambda: SMTP(
                keep,
                hostname="billfold-mail-sink",
                data_size_limit=MAX_MESSAGE_BYTES,
                enable_SMTPUTF8=True,
                loop=loop,
            ),
            HOST,
            0,
        )
    except OSError:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        raise
    host, port = server.sockets[0].getsockname()[:2]
    _write_address(folder, host, port)
    return Sink(server, lock, (host, port))


def _take_lock(folder: Path) -> IO[str] | None:
    """The sink's lock, held (the file stays open for as long as the sink serves); None if
    another process holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = open(folder / LOCK_FILE, "a")  # noqa: SIM115 - held for the sink's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock


def sink_address(data_dir: Path) -> tuple[str, int] | None:
    """Where the sink of `data_dir` serves, as its holder wrote it; None if it never did."""
    try:
        written = json.loads((mail_dir(data_dir) / ADDRESS_FILE).read_text())
        return str(written["host"]), int(written["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_address(folder: Path, host: str, port: int) -> None:
    partial = folder / f".{ADDRESS_FILE}.{os.getpid()}"
    partial.write_text(json.dumps({"host": host, "port": port, "pid": os.getpid()}))
    partial.replace(folder / ADDRESS_FILE)


@dataclass(frozen=True, slots=True)
class Kept:
    """A message the sink keeps, as `billfold mail list` shows it."""

    id: str
    received_at: datetime
    to: str
    subject: str


def list_messages(data_dir: Path, limit: int | None = None) -> list[Kept]:
    """The messages kept, oldest first (the last `limit` of them)."""
    paths = sorted(mail_dir(data_dir).glob(f"*{SUFFIX}"))
    if limit is not None:
        paths = paths[-limit:] if limit > 0 else []
    kept = []
    for path in paths:
        try:
            message = _parse(path.read_bytes())
        except FileNotFoundError:
            continue  # pruned meanwhile
        kept.append(
            Kept(
                path.stem,
                datetime.strptime(path.stem[:22], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC),
                str(message.get("To", "")),
                str(message.get("Subject", "")),
            )
        )
    return kept


def read_message(data_dir: Path, message_id: str) -> EmailMessage:
    """The message kept as `message_id`; LookupError if there is none."""
    if not _ID.match(message_id):
        raise LookupError(f"'{message_id[:40]}' is not a message id (see `billfold mail list`)")
    try:
        return _parse((mail_dir(data_dir) / f"{message_id}{SUFFIX}").read_bytes())
    except FileNotFoundError:
        raise LookupError(f"no message '{message_id}' is kept") from None


def _parse(raw: bytes) -> EmailMessage:
    return message_from_bytes(raw, policy=policy.default)
