"""Concurrency claims, each proven by many concurrent callers on real PostgreSQL.

Several Ledger instances share the database, as several API processes would: their batches
contend for the same rows, so the database's locks and unique indexes are what is tested, not
only one process's in-memory bookkeeping.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from billfold.config import Settings
from billfold.ledger import errors
from billfold.ledger.accounts import get_account
from billfold.ledger.engine import Ledger
from billfold.ledger.model import Transfer
from billfold.ledger.reconcile import reconcile

OpenWallet = Callable[..., Awaitable[int]]
PROCESSES = 4


@pytest.fixture
async def engines(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[list[Ledger]]:
    """Four engines with small batches, standing in for four API processes."""
    small = settings.model_copy(update={"batch_max": 8, "batch_window_ms": 0.5})
    started = [Ledger(pool, small) for _ in range(PROCESSES)]
    for engine in started:
        await engine.start()
    yield started
    for engine in started:
        await engine.stop()


async def _gather(calls: list[Awaitable[Transfer]]) -> list[Transfer | BaseException]:
    return await asyncio.gather(*calls, return_exceptions=True)


async def test_200_debits_of_80_from_100_exactly_one_succeeds(
    engines: list[Ledger], pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """200 concurrent debits of 80 from a wallet holding 100: one succeeds, 199 find no funds."""
    source, sink = await open_wallet(100), await open_wallet()
    outcomes = await _gather(
        [
            engines[i % PROCESSES].move(
                "c",
                str(uuid.uuid4()),
                debit_account_id=source,
                credit_account_id=sink,
                amount_minor=80,
                currency="USD",
                code="p2p",
            )
            for i in range(200)
        ]
    )
    assert sum(isinstance(o, Transfer) for o in outcomes) == 1
    assert sum(isinstance(o, errors.InsufficientFunds) for o in outcomes) == 199
    assert (await get_account(pool, source)).posted_minor == 20


async def test_opposite_direction_storm_never_deadlocks(
    engines: list[Ledger], pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """Transfers both ways between the same accounts all complete: no deadlock reaches a caller."""
    a, b, c = await open_wallet(100_000), await open_wallet(100_000), await open_wallet(100_000)
    pairs = [(a, b), (b, a), (b, c), (c, b), (c, a), (a, c)]
    outcomes = await _gather(
        [
            engines[i % PROCESSES].move(
                "c",
                str(uuid.uuid4()),
                debit_account_id=pairs[i % 6][0],
                credit_account_id=pairs[i % 6][1],
                amount_minor=1 + i % 7,
                currency="USD",
                code="p2p",
            )
            for i in range(600)
        ]
    )
    assert [o for o in outcomes if not isinstance(o, Transfer)] == []
    total = sum([(await get_account(pool, x)).posted_minor for x in (a, b, c)])
    assert total == 300_000


async def test_50_concurrent_requests_with_one_key_make_one_transfer(
    engines: list[Ledger], pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """50 concurrent identical requests with one key move the money once; all see one transfer."""
    source, sink = await open_wallet(1_000), await open_wallet()
    key = str(uuid.uuid4())
    outcomes = await _gather(
        [
            engines[i % PROCESSES].move(
                "c",
                key,
                debit_account_id=source,
                credit_account_id=sink,
                amount_minor=100,
                currency="USD",
                code="p2p",
            )
            for i in range(50)
        ]
    )
    transfers = [o for o in outcomes if isinstance(o, Transfer)]
    assert len(transfers) == 50
    assert len({t.id for t in transfers}) == 1
    assert sum(not t.replayed for t in transfers) == 1
    assert (await get_account(pool, source)).posted_minor == 900


async def test_100_concurrent_posts_of_one_hold_post_it_once(
    engines: list[Ledger], pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """100 concurrent posts of one hold, each with its own key: one posts, 99 find it resolved."""
    source, sink = await open_wallet(1_000), await open_wallet()
    hold = await engines[0].hold(
        "c",
        str(uuid.uuid4()),
        debit_account_id=source,
        credit_account_id=sink,
        amount_minor=400,
        currency="USD",
        code="p2p",
    )
    outcomes = await _gather(
        [engines[i % PROCESSES].post("c", str(uuid.uuid4()), hold.id) for i in range(100)]
    )
    assert sum(isinstance(o, Transfer) for o in outcomes) == 1
    assert sum(isinstance(o, errors.HoldNotPending) for o in outcomes) == 99
    account = await get_account(pool, source)
    assert (account.posted_minor, account.pending_debits_minor) == (600, 0)


async def test_batch_mixing_good_and_failing_transfers_answers_each(
    pool: asyncpg.Pool, settings: Settings, open_wallet: OpenWallet
) -> None:
    """In one batch, transfers that fail do not fail their neighbours; each gets its own answer."""
    rich, poor, sink = await open_wallet(1_000), await open_wallet(10), await open_wallet()
    engine = Ledger(pool, settings.model_copy(update={"batch_window_ms": 200.0}))
    await engine.start()
    plan = [(rich, 100), (poor, 50), (rich, 200), (poor, 10), (rich, 800), (poor, 1)]
    outcomes = await _gather(
        [
            engine.move(
                "c",
                str(uuid.uuid4()),
                debit_account_id=debit,
                credit_account_id=sink,
                amount_minor=amount,
                currency="USD",
                code="p2p",
            )
            for debit, amount in plan
        ]
    )
    await engine.stop()
    assert engine.batches == 1
    kinds = [type(o).__name__ for o in outcomes]
    assert kinds == [
        "Transfer",
        "InsufficientFunds",
        "Transfer",
        "Transfer",
        "InsufficientFunds",
        "InsufficientFunds",
    ]
    assert (await get_account(pool, rich)).posted_minor == 700
    assert (await get_account(pool, poor)).posted_minor == 0
    assert (await get_account(pool, sink)).posted_minor == 310


async def test_ledger_reconciles_after_the_storms(pool: asyncpg.Pool) -> None:
    """After every test above, reconciliation finds no discrepancy."""
    report = await reconcile(pool)
    assert report.problems == []
    assert report.transfers > 0 and report.entries > 0


async def test_a_caller_that_gives_up_mid_batch_does_not_fail_its_neighbours(
    pool: asyncpg.Pool, settings: Settings, open_wallet: OpenWallet
) -> None:
    """Two transfers committed in one batch; one caller is cancelled (a client gone) before the
    batch answers: the other still gets its transfer, and both are committed."""
    payer = await open_wallet(1_000)
    payees = [await open_wallet(), await open_wallet()]
    engine = Ledger(pool, settings)
    entered, go = asyncio.Event(), asyncio.Event()

    async def held_answers(_: object) -> None:
        entered.set()
        await go.wait()

    engine.after_commit = held_answers
    await engine.start()
    try:
        keys = [str(uuid.uuid4()), str(uuid.uuid4())]
        calls = [
            asyncio.create_task(
                engine.move(
                    "test",
                    key,
                    debit_account_id=payer,
                    credit_account_id=payee,
                    amount_minor=100,
                    currency="USD",
                    code="p2p",
                )
            )
            for key, payee in zip(keys, payees, strict=True)
        ]
        await asyncio.wait_for(entered.wait(), 10)
        calls[0].cancel()
        go.set()
        kept = await asyncio.wait_for(calls[1], 10)
        assert isinstance(kept, Transfer)
        assert calls[0].cancelled()
    finally:
        await engine.stop()
    balances = [(await get_account(pool, payee)).posted_minor for payee in payees]
    assert balances == [100, 100]
