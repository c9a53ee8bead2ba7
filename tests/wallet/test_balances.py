"""The Redis balance cache follows the ledger and never lets an older balance win."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from redis.asyncio import Redis

from billfold.config import Settings
from billfold.ledger.accounts import get_account, open_account
from billfold.ledger.engine import Ledger
from billfold.ledger.model import AccountBalance, AccountKind
from billfold.wallet.balances import BalanceCache


async def test_an_older_version_never_replaces_a_newer_one(redis: Redis) -> None:
    cache = BalanceCache(redis)
    account = 10**12 + int(uuid.uuid4().int % 10**6)
    await cache.put_many([AccountBalance(account, 600, 0, 0, 6)])
    await cache.put_many([AccountBalance(account, 500, 0, 0, 5)])
    await cache.put_many([AccountBalance(account, 600, 0, 0, 6)])
    assert await cache.get(account) == AccountBalance(account, 600, 0, 0, 6)
    await cache.put_many([AccountBalance(account, 700, 10, 0, 7)])
    assert await cache.get(account) == AccountBalance(account, 700, 10, 0, 7)


async def test_cache_ends_equal_to_the_ledger_after_concurrent_transfers_and_fills(
    pool: asyncpg.Pool, redis: Redis, settings: Settings
) -> None:
    """Transfers publish balances while readers fill misses from the database at the same time;
    when all is done every cached balance equals the ledger's."""
    cache = BalanceCache(redis)
    ledger = Ledger(pool, settings.model_copy(update={"batch_max": 4}))
    ledger.after_commit = cache.put_many
    await ledger.start()
    bank = await open_account(
        pool, kind=AccountKind.SYSTEM, owner="t", currency="USD", overdraft_limit_minor=10**12
    )
    wallets = [
        (await open_account(pool, kind=AccountKind.WALLET, owner="t", currency="USD")).id
        for _ in range(4)
    ]

    async def transfers() -> None:
        for i in range(60):
            await ledger.move(
                "t",
                str(uuid.uuid4()),
                debit_account_id=bank.id,
                credit_account_id=wallets[i % 4],
                amount_minor=1 + i,
                currency="USD",
                code="add_funds",
            )

    async def stale_fills() -> None:
        for i in range(120):
            account = await get_account(pool, wallets[i % 4])
            await asyncio.sleep(0.001)  # let a commit land between the read and the fill
            await cache.put_many(
                [AccountBalance(account.id, account.posted_minor, 0, 0, account.version)]
            )

    await asyncio.gather(transfers(), stale_fills(), transfers())
    await ledger.stop()
    for wallet in wallets:
        account = await get_account(pool, wallet)
        cached = await cache.get(wallet)
        assert cached is not None
        assert (cached.posted_minor, cached.version) == (account.posted_minor, account.version)
