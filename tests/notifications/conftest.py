"""The notifications context's tests: people made through the wallet's own functions, and the
consumer's handler on the session's database with a data dir (and so a mail sink) of the
module's own. No mailer task runs: a test sends what is due itself (Mailer.send_due)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from billfold.config import Settings
from billfold.notifications.service import Notifications
from billfold.wallet.users import User, check_sign_up, do_create_user

MakeUser = Callable[[], Awaitable[User]]
_phones = itertools.count(8_500_000)  # away from the other tests' people


@pytest.fixture(scope="module")
def mail_settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The session's settings on a data dir of the module's own: its mail sink, its messages."""
    data_dir: Path = tmp_path_factory.mktemp("notifications")
    return settings.model_copy(update={"data_dir": data_dir})


@pytest.fixture(scope="module")
async def told(pool: asyncpg.Pool, mail_settings: Settings) -> AsyncIterator[Notifications]:
    """The consumer's handler, its mail sink served (no mailer task: tests send themselves)."""
    notifications = Notifications(pool, mail_settings)
    await notifications.server.start()
    yield notifications
    await notifications.server.close()


@pytest.fixture(scope="module")
def make_user(pool: asyncpg.Pool) -> MakeUser:
    async def make() -> User:
        tag = uuid.uuid4().hex[:10]
        phone = f"+1415{next(_phones):07d}"
        sign_up = check_sign_up(f"n_{tag}", f"{tag}@example.com", phone, "correct horse battery")
        return await do_create_user(pool, sign_up)

    return make
