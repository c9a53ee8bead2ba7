"""Email: each notification a person wants by email is sent by the mailer, a task in every
process that consumes the stream, never on the money path.

A notification's row is its queue entry (`email_status` pending, `email_next_at` due). The
mailer claims due rows (SKIP LOCKED, so processes share them), pushing their due time a lease
ahead, and sends them; a sent one is marked sent, a failed one is due again after a back-off
(with jitter), up to MAX_ATTEMPTS, and one the server refuses for good (a 5xx) is marked failed.
A process that dies mid-send leaves its rows to be claimed again once the lease is over: email
is sent at least once, and its Message-ID, the notification's id, is the same each time.

The server is BILLFOLD_SMTP_URL's (aiosmtplib), or else the local sink (notifications.sink).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiosmtplib
import asyncpg
from prometheus_client import Counter

from billfold.config import Settings
from billfold.notifications.sink import Sink, sink_address, take_sink
from billfold.notifications.texts import email_body
from billfold.platform.logging import get_logger

log = get_logger("billfold.notifications.mail")

BATCH = 20
# Messages sent at once, each over its own connection to the server.
CONNECTIONS = 4
POLL_S = 5.0
FIRST_RETRY_S = 30.0
MAX_RETRY_S = 3600.0
# About a day of tries (30 s doubling to an hour, then hourly).
MAX_ATTEMPTS = 30
PRUNE_EVERY_S = 3600.0
PRUNE_BATCH = 5000

# What the server answers a message it will not take (the connection goes on).
REFUSED = (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPResponseException)

MAIL_SENT = Counter("billfold_mail_sent", "Notification emails the SMTP server accepted.")
MAIL_FAILED = Counter(
    "billfold_mail_failures",
    "Notification emails not sent, by outcome: retry (due again later) or failed (given up).",
    ["outcome"],
)

_CLAIM = """
UPDATE notifications n
   SET email_next_at = now() + make_interval(secs => $1), email_attempts = n.email_attempts + 1
  FROM users u
 WHERE u.id = n.user_id
   AND n.seq IN (SELECT seq FROM notifications
                  WHERE email_status = 'pending' AND email_next_at <= now()
                  ORDER BY email_next_at LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING n.seq, n.id, n.email_to, n.subject, n.body, n.email_attempts, u.username
"""
_SENT = """
UPDATE notifications SET email_status = 'sent', email_sent_at = now(), email_next_at = NULL,
                         email_error = NULL
 WHERE seq = ANY($1::bigint[]) AND email_status = 'pending'
"""
_RETRY = """
UPDATE notifications SET email_next_at = now() + make_interval(secs => $2), email_error = $3
 WHERE seq = $1 AND email_status = 'pending'
"""
_FAILED = """
UPDATE notifications SET email_status = 'failed', email_next_at = NULL, email_error = $2
 WHERE seq = $1 AND email_status = 'pending'
"""
_PRUNE = """
DELETE FROM notifications WHERE seq IN (
    SELECT seq FROM notifications WHERE created_at < now() - make_interval(days => $1) LIMIT $2)
"""


class SmtpServer:
    """The server BILLFOLD_SMTP_URL names: smtp:// (STARTTLS when the server offers it) or
    smtps:// (TLS from the start); its user and password from the URL, else from
    BILLFOLD_SMTP_USER / BILLFOLD_SMTP_PASSWORD."""

    def __init__(self, settings: Settings) -> None:
        url = urlsplit(str(settings.smtp_url))
        self.host = str(url.hostname)
        self.tls = url.scheme == "smtps"
        self.port = url.port or (465 if self.tls else 25)
        self.username = unquote(url.username) if url.username else settings.smtp_user
        self.password = unquote(url.password) if url.password else settings.smtp_password
        self.timeout_s = settings.smtp_timeout_s

    async def start(self) -> None:
        return None

    def client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.tls,
            start_tls=False if self.tls else None,
            timeout=self.timeout_s,
        )

    async def close(self) -> None:
        return None


class LocalSink:
    """The sink on the data dir (notifications.sink): served by this process if it can take
    it, at start or when the process serving it is gone."""

    def __init__(self, data_dir: Path, timeout_s: float) -> None:
        self.data_dir = data_dir
        self.timeout_s = timeout_s
        self.sink: Sink | None = None

    async def start(self) -> None:
        self.sink = await take_sink(self.data_dir)

    def client(self) -> aiosmtplib.SMTP:
        address = sink_address(self.data_dir)
        if address is None:
            raise aiosmtplib.SMTPConnectError(f"no mail sink has served in {self.data_dir}")
        host, port = address
        return aiosmtplib.SMTP(hostname=host, port=port, start_tls=False, timeout=self.timeout_s)

    async def take_over(self) -> None:
        """Serve the sink if no process does (its holder exited)."""
        if self.sink is None:
            self.sink = await take_sink(self.data_dir)

    async def close(self) -> None:
        if self.sink is not None:
            await self.sink.close()
            self.sink = None


def transport(settings: Settings) -> SmtpServer | LocalSink:
    if settings.smtp_url:
        return SmtpServer(settings)
    return LocalSink(settings.data_dir, settings.smtp_timeout_s)


@dataclass(frozen=True, slots=True)
class Outgoing:
    seq: int
    id: uuid.UUID
    to: str
    subject: str
    body: str
    attempts: int
    username: str


def compose(settings: Settings, mail: Outgoing) -> EmailMessage:
    """The email of a notification. Its Message-ID is the notification's: the same message
    sent again (delivery is at least once) can be told a repeat."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{mail.id}@billfold.notifications>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(email_body(mail.username, mail.body))
    return message


class Mailer:
    """Sends the notifications' emails that are due, as the module docstring says."""

    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, server: SmtpServer | LocalSink
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.server = server
        self.wake = asyncio.Event()
        # A claimed row is due again after this, should this process die sending it.
        self.lease_s = settings.smtp_timeout_s * (BATCH // CONNECTIONS + 2) + 30

    async def serve(self) -> None:
        """Until cancelled: send what is due whenever woken (a notification recorded) or every
        POLL_S, and prune old notifications every PRUNE_EVERY_S."""
        pruned_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), POLL_S)
            self.wake.clear()
            try:
                while await self.send_due() == BATCH:
                    pass
                if loop.time() - pruned_at > PRUNE_EVERY_S:
                    await self.prune()
                    pruned_at = loop.time()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("mailer failed, retrying", error=str(error))

    async def send_due(self) -> int:
        """Claim the due emails (up to BATCH), send them and record how it went; how many."""
        if isinstance(self.server, LocalSink):
            await self.server.take_over()
        rows = await self.pool.fetch(_CLAIM, self.lease_s, BATCH)
        due = [Outgoing(*row) for row in rows]
        shares = [due[i::CONNECTIONS] for i in range(CONNECTIONS)]
        sent = await asyncio.gather(*(self._send(share) for share in shares if share))
        done = [seq for seqs in sent for seq in seqs]
        if done:
            await self.pool.execute(_SENT, done)
        return len(due)

    async def prune(self) -> int:
        """Delete notifications past the retention period, PRUNE_BATCH at a time; how many."""
        total = 0
        while True:
            done = await self.pool.execute(
                _PRUNE, self.settings.notifications_retention_days, PRUNE_BATCH
            )
            count = int(done.split()[-1])
            total += count
            if count < PRUNE_BATCH:
                return total

    async def _send(self, share: Sequence[Outgoing]) -> list[int]:
        """Send `share` over one connection; the seqs sent (the others are marked to retry or
        failed)."""
        sent: list[int] = []
        try:
            client = self.server.client()
            async with client:
                for mail in share:
                    try:
                        await client.send_message(compose(self.settings, mail))
                    except REFUSED as refused:
                        await self._refused(mail, refused)
                        continue
                    sent.append(mail.seq)
                    MAIL_SENT.inc()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            for mail in share:
                if mail.seq not in sent:
                    await self._retry(mail, _describe(error))
        return sent

    async def _refused(self, mail: Outgoing, error: aiosmtplib.SMTPException) -> None:
        """A refusal of this message: for good (5xx) or for now (4xx)."""
        code = _code(error)
        if code is not None and code >= 500:
            log.warning("email refused", notification=str(mail.id), error=_describe(error))
            MAIL_FAILED.labels("failed").inc()
            await self.pool.execute(_FAILED, mail.seq, _describe(error))
            return
        await self._retry(mail, _describe(error))

    async def _retry(self, mail: Outgoing, error: str) -> None:
        if mail.attempts >= MAX_ATTEMPTS:
            log.warning("email given up", notification=str(mail.id), error=error)
            MAIL_FAILED.labels("failed").inc()
            await self.pool.execute(_FAILED, mail.seq, error)
            return
        MAIL_FAILED.labels("retry").inc()
        await self.pool.execute(_RETRY, mail.seq, retry_after_s(mail.attempts), error)


def retry_after_s(attempts: int) -> float:
    """The back-off after `attempts` tries: FIRST_RETRY_S doubling up to MAX_RETRY_S, with up
    to a fifth more or less, so that a server's return is not met by every retry at once."""
    base = min(FIRST_RETRY_S * 2.0 ** min(attempts - 1, 20), MAX_RETRY_S)
    return base * random.uniform(0.8, 1.2)


def _code(error: aiosmtplib.SMTPException) -> int | None:
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in error.recipients]
        return min(codes) if codes else None
    return getattr(error, "code", None)


def _describe(error: BaseException) -> str:
    """An error as stored and logged: its type and message, never a password (aiosmtplib's
    messages hold none), cut short."""
    return f"{type(error).__name__}: {error}"[:300]
