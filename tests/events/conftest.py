"""Fixtures for the events: a ledger engine of the module's own, wallets, brokers on streams of a
test's own."""

from __future__ import annotations

import contextlib
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import nats
import pytest
from nats.errors import Error as NatsError
from redis.asyncio import Redis

from billfold.config import Settings
from billfold.events.brokers import (
    REDELIVER_AFTER_S,
    Broker,
    JetStream,
    RedisStreams,
)
from billfold.ledger.accounts import open_account
from billfold.ledger.engine import Ledger
from billfold.ledger.model import Account, AccountKind

_counter = itertools.count()
# Opens a USD wallet holding a balance (minor units); its account id.
OpenWallet = Callable[[int], Awaitable[int]]


@pytest.fixture(scope="module")
async def ledger(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[Ledger]:
    engine = Ledger(pool, settings)
    await engine.start()
    yield engine
    await engine.stop()


@pytest.fixture(scope="module")
async def bank(pool: asyncpg.Pool) -> Account:
    return await open_account(
        pool,
        kind=AccountKind.SYSTEM,
        owner="system",
        currency="USD",
        name=f"test:events-bank:{uuid.uuid4()}",
        overdraft_limit_minor=10**15,
    )


@pytest.fixture
def open_wallet(pool: asyncpg.Pool, ledger: Ledger, bank: Account) -> OpenWallet:
    async def open_(balance: int) -> int:
        account = await open_account(
            pool, kind=AccountKind.WALLET, owner=f"events:{next(_counter)}", currency="USD"
        )
        await ledger.move(
            "test",
            f"fund-{uuid.uuid4()}",
            debit_account_id=bank.id,
            credit_account_id=account.id,
            amount_minor=balance,
            currency="USD",
            code="add_funds",
        )
        return account.id

    return open_


# The machine's JetStream server. CI names it (BILLFOLD_TEST_NATS_URL): there a test that needs
# it fails rather than skips when it is unreachable; elsewhere, without one, it is skipped.
NATS_URL = os.environ.get("BILLFOLD_TEST_NATS_URL", "nats://127.0.0.1:4222")

MakeBroker = Callable[..., Awaitable[Broker]]


@pytest.fixture(params=["redis", "nats"])
async def make_broker(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[MakeBroker]:
    """Makes clients (one a group member, as each process has its own) of a stream of the test's
    own, on the session's Redis or on the machine's JetStream server: tests running at once on
    those servers do not meet. `make_broker(redeliver_after_s=...)` as `brokers.connect`."""
    tag = uuid.uuid4().hex[:12]
    made: list[Broker] = []

    async def make(redeliver_after_s: float = REDELIVER_AFTER_S) -> Broker:
        broker: Broker
        if request.param == "redis":
            client = Redis.from_url(redis_url, decode_responses=True)
            broker = RedisStreams(
                client, stream=f"test:events:{tag}", redeliver_after_s=redeliver_after_s
            )
        else:
            broker = await nats_broker(
                stream=f"TEST_{tag}",
                subject_prefix=f"test{tag}.",
                redeliver_after_s=redeliver_after_s,
            )
        made.append(broker)
        return broker

    yield make
    if request.param == "redis":
        cleaner = Redis.from_url(redis_url)
        await cleaner.delete(f"test:events:{tag}")
        await cleaner.aclose()
    elif made:
        client = await nats.connect(NATS_URL)
        with contextlib.suppress(NatsError):
            await client.jetstream().delete_stream(f"TEST_{tag}")
        await client.close()
    for broker in made:
        await broker.close()


async def nats_broker(**options: Any) -> JetStream:
    """A client of the machine's JetStream server (skips the test without one, outside CI)."""
    try:
        return await JetStream.connect(NATS_URL, **options)
    except (OSError, TimeoutError) as error:
        if os.environ.get("CI") or os.environ.get("BILLFOLD_TEST_NATS_URL"):
            raise
        pytest.skip(f"no NATS at {NATS_URL}: {error!r}")
