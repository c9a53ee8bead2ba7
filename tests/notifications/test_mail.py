"""Email goes out through a real SMTP server: the local sink (aiosmtpd in the service, keeping
each message on disk) or the server BILLFOLD_SMTP_URL names, logging in as it says. A failure
is tried again later, a refusal for good is given up, and a message is never lost."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import asyncpg
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from billfold.config import Settings
from billfold.notifications import sink
from billfold.notifications.mail import BATCH, LocalSink
from billfold.notifications.service import Notifications
from tests.notifications import events
from tests.notifications.conftest import MakeUser
from tests.world import billfold


class Inbox:
    """A mail server's handler, as a provider's would be: keeps what it accepts, records who
    logged in, and refuses what a test tells it to."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.logins: list[tuple[bytes, bytes]] = []
        self.refuse_for_good: set[str] = set()  # recipients answered 550
        self.refuse_for_now: dict[str, int] = {}  # recipient: how many DATA to answer 451

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse_for_good:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        for address in envelope.rcpt_tos:
            if self.refuse_for_now.get(address, 0) > 0:
                self.refuse_for_now[address] -= 1
                return "451 4.3.0 try again later"
        raw = envelope.original_content or b""
        self.messages.append(message_from_bytes(raw, policy=policy.default))
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        return AuthResult(success=True)

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@contextlib.asynccontextmanager
async def mail_server(inbox: Inbox) -> AsyncIterator[int]:
    """A real SMTP server (aiosmtpd) on a free port of 127.0.0.1 that takes AUTH without TLS (a
    test's loopback); its port."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(inbox, authenticator=inbox.authenticate, auth_require_tls=False, loop=loop),
        "127.0.0.1",
        0,
    )
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)


async def send_all(told: Notifications) -> None:
    """What is due, sent (a bounded number of batches)."""
    for _ in range(100):
        if await told.mailer.send_due() < BATCH:
            return


async def email_state(pool: asyncpg.Pool, event: events.CloudEvent) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT id, email_status, email_attempts, email_error, email_next_at > now() AS later"
        " FROM notifications WHERE event_id = $1",
        uuid.UUID(event["id"]),
    )
    assert row is not None
    return row


async def test_an_email_goes_through_the_local_sink_to_disk(
    pool: asyncpg.Pool, told: Notifications, make_user: MakeUser, mail_settings: Settings
) -> None:
    """With no BILLFOLD_SMTP_URL, the returned add-funds' email is sent over SMTP to the sink,
    which keeps it under data_dir/mail: read back, it says why in words, to the person's
    address, and its row is marked sent."""
    ada = await make_user()
    returned = events.funding("returned", str(ada.id), "R01")
    await told.handle([returned])
    await send_all(told)
    state = await email_state(pool, returned)
    assert state["email_status"] == "sent"
    [kept] = [k for k in sink.list_messages(mail_settings.data_dir) if k.to == ada.email]
    assert kept.subject == "Your add-funds of $40.00 was returned"
    message = sink.read_message(mail_settings.data_dir, kept.id)
    text = " ".join(message.get_content().split())
    assert "insufficient funds in the bank account" in text
    assert text.startswith(f"Hello {ada.username},")
    assert message["Message-ID"] == f"<{state['id']}@billfold.notifications>"
    assert "R01" not in message.as_string()


async def test_billfold_mail_list_and_show_print_what_the_sink_kept(
    told: Notifications, make_user: MakeUser, mail_settings: Settings
) -> None:
    """`billfold mail list` prints each kept message's id, recipient and subject; `billfold
    mail show ID` its text."""
    ada = await make_user()
    await told.handle([events.user_event("frozen", str(ada.id))])
    await send_all(told)
    listed = billfold(mail_settings, "mail", "list", "--last", "500")
    assert listed.returncode == 0, listed.stderr
    [line] = [line for line in listed.stdout.splitlines() if ada.email in line]
    assert line.endswith("Your wallet is frozen")
    shown = billfold(mail_settings, "mail", "show", line.split()[0])
    assert shown.returncode == 0, shown.stderr
    assert f"To: {ada.email}" in shown.stdout and "has been frozen" in shown.stdout
    missing = billfold(mail_settings, "mail", "show", "../../etc/passwd")
    assert missing.returncode == 1 and "not a message id" in missing.stderr


async def test_an_email_goes_through_the_server_billfold_smtp_url_names(
    pool: asyncpg.Pool, make_user: MakeUser, mail_settings: Settings
) -> None:
    """BILLFOLD_SMTP_URL with a user and password: the mailer logs in with them (the password
    percent-decoded) and the server gets the message, from BILLFOLD's sender."""
    ada, bob = await make_user(), await make_user()
    inbox = Inbox()
    async with mail_server(inbox) as port:
        url = f"smtp://mailer:p%40ss@127.0.0.1:{port}"
        told = Notifications(pool, mail_settings.model_copy(update={"smtp_url": url}))
        received = events.transfer_completed(str(bob.id), str(ada.id), "9.99")
        await told.handle([received])
        await send_all(told)
    [message] = inbox.to(ada.email)
    assert message["Subject"] == f"You received $9.99 from @{bob.username}"
    assert message["From"] == mail_settings.mail_from
    assert (b"mailer", b"p@ss") in inbox.logins
    assert (await email_state(pool, received))["email_status"] == "sent"


async def test_a_server_failure_is_tried_again_later_and_a_refusal_for_good_is_not(
    pool: asyncpg.Pool, make_user: MakeUser, mail_settings: Settings
) -> None:
    """A 451 leaves the email pending, due later, its error kept; once due it goes. A 550 marks
    it failed. With the server down, it stays pending: nothing is lost."""
    ada, bob, cy = await make_user(), await make_user(), await make_user()
    inbox = Inbox()
    inbox.refuse_for_now[ada.email] = 1
    inbox.refuse_for_good.add(bob.email)
    async with mail_server(inbox) as port:
        told = Notifications(
            pool, mail_settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
        )
        for_ada = events.user_event("unfrozen", str(ada.id))
        for_bob = events.user_event("unfrozen", str(bob.id))
        await told.handle([for_ada, for_bob])
        await send_all(told)
        first = await email_state(pool, for_ada)
        assert (first["email_status"], first["email_attempts"], first["later"]) == (
            "pending",
            1,
            True,
        )
        assert "451" in first["email_error"]
        refused = await email_state(pool, for_bob)
        assert (refused["email_status"], refused["email_attempts"]) == ("failed", 1)
        assert "550" in refused["email_error"]
        await pool.execute(
            "UPDATE notifications SET email_next_at = now() WHERE id = $1", first["id"]
        )
        await send_all(told)
    assert (await email_state(pool, for_ada))["email_status"] == "sent"
    assert len(inbox.to(ada.email)) == 1 and inbox.to(bob.email) == []
    for_cy = events.user_event("frozen", str(cy.id))
    await told.handle([for_cy])  # the server is gone now
    await send_all(told)
    down = await email_state(pool, for_cy)
    assert (down["email_status"], down["email_attempts"], down["later"]) == ("pending", 1, True)


async def test_the_sink_is_served_by_one_process_and_taken_over_when_it_goes(
    tmp_path_factory: Any,
) -> None:
    """Two mailers on one data dir: the first serves the sink, the second sends to it; once the
    first is gone, the second serves it. Every message is kept."""
    data_dir = tmp_path_factory.mktemp("sink")
    first, second = LocalSink(data_dir, 5.0), LocalSink(data_dir, 5.0)
    await first.start()
    await second.start()
    assert first.sink is not None and second.sink is None
    await _send(second, "one@example.com")
    await first.close()
    await second.take_over()
    assert second.sink is not None
    await _send(second, "two@example.com")
    await second.close()
    assert [k.to for k in sink.list_messages(data_dir)] == ["one@example.com", "two@example.com"]


async def _send(server: LocalSink, to: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "billfold@example.com", to, "hello"
    message.set_content("hello")
    async with server.client() as client:
        await client.send_message(message)
