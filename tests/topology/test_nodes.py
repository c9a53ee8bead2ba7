"""Several nodes (`billfold serve` processes) on one database: three running apps, each its own
pool, Ledger (group commit), relay and background loops, on one PostgreSQL database and one
Redis. Money moved across them balances, a key sent to two at once executes once, and each
piece of background work is done by one node. The ledger reconciles after each test."""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime, timedelta

import pytest

from billfold.config import Settings
from billfold.events import outbox
from billfold.events.brokers import STREAM
from billfold.ledger.accounts import get_account
from billfold.ledger.model import Transfer
from billfold.ledger.reconcile import reconcile
from billfold.merchants import checkout, payments, profiles, refunds
from billfold.platform import leases
from billfold.platform.errors import BillfoldError
from billfold_bench.rules import LOAD_TEST_RULES
from tests.merchants.test_payouts import daily_merchant, merchant_payouts, run_day
from tests.webhooks.conftest import until
from tests.world import NOWHERE, World, running_app

pytestmark = pytest.mark.usefixtures("reconciled")
BOUND_S = 20.0  # the longest any wait below may take


@pytest.fixture(scope="module")
def settings(isolated_settings: Settings) -> Settings:
    """A database of this module's own: the sweeps and runs below take every due row."""
    return isolated_settings


@pytest.fixture(scope="module")
async def nodes(settings: Settings) -> AsyncIterator[list[World]]:
    """Three nodes on the module's database and Redis."""
    async with AsyncExitStack() as stack:
        apps = [
            await stack.enter_async_context(running_app(settings, risk_rules=LOAD_TEST_RULES))
            for _ in range(3)
        ]
        yield [World(app) for app in apps]


@pytest.fixture
async def reconciled(nodes: list[World]) -> AsyncIterator[None]:
    yield
    report = await reconcile(nodes[0].state.pool)
    assert report.ok, report.render()


async def test_transfers_around_a_cycle_on_three_nodes_balance(nodes: list[World]) -> None:
    """Each node moves money along one side of a cycle of three wallets (A to B, B to C, C to
    A), 60 transfers a node at once, so that each node's batches lock the accounts the others'
    do, in the other direction: none deadlocks or is refused, and every balance ends where it
    began."""
    people = [await nodes[0].person(100_00) for _ in range(3)]
    accounts = [p.account_id for p in people]

    async def move(node: World, debit: int, credit: int) -> Transfer:
        return await node.state.ledger.move(
            "test",
            uuid.uuid4().hex,
            debit_account_id=debit,
            credit_account_id=credit,
            amount_minor=1_00,
            currency="USD",
            code="p2p",
        )

    moves = [
        move(nodes[i], accounts[i], accounts[(i + 1) % 3]) for _ in range(60) for i in range(3)
    ]
    outcomes = await asyncio.gather(*moves, return_exceptions=True)
    assert [o for o in outcomes if not isinstance(o, Transfer)] == []
    for account in accounts:
        assert (await get_account(nodes[1].state.pool, account)).posted_minor == 100_00


async def test_one_key_sent_to_two_nodes_at_once_moves_money_once(nodes: list[World]) -> None:
    """The same ledger command with one key, on two nodes at once, 20 keys over: each key's
    money moves once, and both nodes answer with the same transfer (one of them a replay)."""
    payer, payee = await nodes[0].person(100_00), await nodes[0].person()
    keys = [uuid.uuid4().hex for _ in range(20)]

    async def move(node: World, key: str) -> Transfer:
        return await node.state.ledger.move(
            "test",
            key,
            debit_account_id=payer.account_id,
            credit_account_id=payee.account_id,
            amount_minor=1_00,
            currency="USD",
            code="p2p",
        )

    answers = await asyncio.gather(*(move(n, k) for k in keys for n in nodes[:2]))
    pairs = list(zip(answers[::2], answers[1::2], strict=True))
    assert all(a.id == b.id and a.entries == b.entries for a, b in pairs)
    assert sorted(a.replayed + b.replayed for a, b in pairs) == [1] * 20
    assert (await get_account(nodes[0].state.pool, payee.account_id)).posted_minor == 20_00


async def test_one_payment_request_sent_to_two_nodes_at_once_is_made_once(
    nodes: list[World],
) -> None:
    """A person's send-money request with one Idempotency-Key reaching two nodes at once: one
    transfer. A node that meets the other's claim in Redis while it runs says so (409
    `idempotency_key_in_use`, wallet.p2p), and that request retried answers what the first
    stored; one that comes after answers it at once."""
    payer, payee = await nodes[0].person(50_00), await nodes[0].person()
    key = uuid.uuid4().hex
    first, second = await asyncio.gather(
        nodes[0].send(payer, payee, "7.00", key=key),
        nodes[1].send(payer, payee, "7.00", key=key),
        return_exceptions=True,
    )
    made = [a for a in (first, second) if isinstance(a, dict)]
    refused = [a for a in (first, second) if not isinstance(a, dict)]
    assert [(r.status, r.code) for r in refused if isinstance(r, BillfoldError)] == [
        (409, "idempotency_key_in_use")
    ] * len(refused)
    retried = [await nodes[1].send(payer, payee, "7.00", key=key) for _ in refused]
    assert len({str(a) for a in made + retried}) == 1
    assert (await get_account(nodes[2].state.pool, payee.account_id)).posted_minor == 7_00


async def test_expired_holds_are_voided_once_by_one_node(nodes: list[World]) -> None:
    """60 holds past their expiry, swept by three nodes at once (and by their own loops, which
    may start before the last hold is made): each hold is voided once, and the nodes together
    sent the ledger 60 voids after the 60 holds, not one a node."""
    payer, payee = await nodes[0].person(100_00), await nodes[0].person()
    past = datetime.now(UTC) - timedelta(seconds=1)
    sent = sum(n.state.ledger.commands for n in nodes)
    holds = [
        await nodes[0].state.ledger.hold(
            "test",
            uuid.uuid4().hex,
            debit_account_id=payer.account_id,
            credit_account_id=payee.account_id,
            amount_minor=1_00,
            currency="USD",
            code="p2p",
            expires_at=past,
        )
        for _ in range(60)
    ]
    await asyncio.gather(*(n.state.ledger.void_expired_holds() for n in nodes))

    async def voids() -> list[int]:
        rows = await nodes[0].state.pool.fetch(
            "SELECT pending_id FROM transfers WHERE pending_id = ANY($1::bigint[])",
            [h.id for h in holds],
        )
        return sorted(r["pending_id"] for r in rows)

    # A loop's sweep may hold the lease while the three above found it taken: wait for it.
    assert await until(lambda: _all(voids, len(holds)), BOUND_S) == sorted(h.id for h in holds)
    assert sum(n.state.ledger.commands for n in nodes) - sent == 60 + 60
    assert (await get_account(nodes[0].state.pool, payer.account_id)).pending_debits_minor == 0


async def _all(read: Callable[[], Awaitable[list[int]]], count: int) -> list[int] | None:
    """What `read` gives once it gives `count` things; None before."""
    found = await read()
    return found if len(found) == count else None


async def test_a_lease_is_held_by_one_node_at_a_time(nodes: list[World]) -> None:
    """Of three nodes asking for one round's lease at once, one holds it; given up, it is free."""
    pools = [n.state.pool for n in nodes]
    async with AsyncExitStack() as stack:
        held = [await stack.enter_async_context(leases.lease(p, 99)) for p in pools]
        assert sorted(held) == [False, False, True]
    async with leases.lease(pools[2], 99) as again:
        assert again


async def test_checkout_sessions_expire_once_across_the_fleet(nodes: list[World]) -> None:
    """40 sessions past their expiry, swept by three nodes at once (and their own loops): each
    expires once, told once."""
    owner = await nodes[0].person()
    new = profiles.check_create_merchant("Corner Bakery", "5462", "Oakland", "US")
    merchant = await profiles.do_create_merchant(nodes[0].state.pool, owner.id, new)
    ids = []
    for _ in range(40):
        made = checkout.check_create_session(merchant, "3.00", None, 60, uuid.uuid4().hex)
        view, _ = await checkout.do_create_session(nodes[0].state.pool, merchant, made)
        ids.append(uuid.UUID(view["session_id"]))
    pool = nodes[0].state.pool
    await pool.execute(
        "UPDATE checkout_sessions SET expires_at = now() - interval '1 second'"
        " WHERE id = ANY($1::uuid[])",
        ids,
    )
    await asyncio.gather(*(checkout.expire_due(n.state.pool) for n in nodes))

    async def expired() -> list[int]:
        rows = await pool.fetch(
            "SELECT 1 FROM checkout_sessions WHERE id = ANY($1) AND status = 'expired'", ids
        )
        return [1 for _ in rows]

    # A loop's sweep may hold some sessions while the three above skipped them: wait for it.
    assert await until(lambda: _all(expired, len(ids)), BOUND_S)
    told = await pool.fetch(
        "SELECT subject FROM outbox WHERE type LIKE '%checkout.session.expired%'"
        " AND subject = ANY($1::text[])",
        [f"checkout-session/{i}" for i in ids],
    )
    assert sorted(collections.Counter(r["subject"] for r in told).values()) == [1] * 40


async def test_refunds_left_reserved_are_resumed_once_across_the_fleet(
    nodes: list[World],
) -> None:
    """Five refunds reserved but never moved (their process died), resumed by three nodes at
    once: one node moves them, each once; the others do nothing."""
    owner, payer = await nodes[0].person(), await nodes[0].person(50_00)
    new = profiles.check_create_merchant("Corner Bakery", "5462", "Oakland", "US")
    merchant = await profiles.do_create_merchant(nodes[0].state.pool, owner.id, new)
    made = checkout.check_create_session(merchant, "10.00", None, 60, uuid.uuid4().hex)
    session, _ = await checkout.do_create_session(nodes[0].state.pool, merchant, made)
    paying = payments.PaymentRequest(None, session["session_id"], None, None, uuid.uuid4().hex)
    paid, _ = await payments.pay(nodes[0].state.merchants, nodes[0].gate(), payer, paying, NOWHERE)
    for _ in range(5):
        wanted = refunds.RefundRequest(paid["payment_id"], "1.00", None, uuid.uuid4().hex)
        await refunds._reserve(nodes[0].state.pool, refunds.check_refund(merchant, wanted))
    sent = sum(n.state.ledger.commands for n in nodes)
    resumed = await asyncio.gather(
        *(refunds.resume_pending(n.state.pool, n.state.ledger, older_than_s=0) for n in nodes)
    )
    assert sorted(resumed) == [0, 0, 5]
    assert sum(n.state.ledger.commands for n in nodes) - sent == 5
    statuses = await nodes[0].state.pool.fetch(
        "SELECT status FROM merchant_refunds WHERE payment_id = $1", uuid.UUID(paid["payment_id"])
    )
    assert [r["status"] for r in statuses] == ["COMPLETED"] * 5
    assert (await get_account(nodes[0].state.pool, payer.account_id)).posted_minor == 45_00


async def test_the_relays_of_three_nodes_publish_each_event_once(nodes: list[World]) -> None:
    """300 events written on one node are published by the three nodes' relays (each running
    as `billfold serve` runs it) to the Redis stream, each once."""
    now = datetime.now(UTC)
    events = [
        outbox.Event("test.happened", f"thing/{i}", f"k/{i % 7}", now, {}) for i in range(300)
    ]
    pool = nodes[0].state.pool
    async with pool.acquire() as conn, conn.transaction():
        await outbox.write(conn, events)
    ids = [e.id for e in events]

    async def all_published() -> bool:
        return not await pool.fetchval(
            "SELECT count(*) FROM outbox WHERE event_id = ANY($1) AND published_at IS NULL", ids
        )

    assert await until(all_published, BOUND_S)
    entries = await nodes[1].state.redis.xrange(STREAM)
    published = collections.Counter(fields["id"] for _, fields in entries)
    assert [published[str(i)] for i in ids] == [1] * 300


async def test_two_nodes_pay_each_daily_merchant_once(nodes: list[World]) -> None:
    """The daily payouts of one day, run by two nodes at once: each merchant paid once."""
    day = date(2031, 3, 3)
    _, rich = await daily_merchant(nodes[0], 40_00)
    _, also = await daily_merchant(nodes[0], 2_00)
    first, second = await asyncio.gather(run_day(nodes[0], day), run_day(nodes[1], day))
    assert first.paid + second.paid == 2
    assert await merchant_payouts(nodes[2], rich) == [(40_00, "pending")]
    assert await merchant_payouts(nodes[2], also) == [(2_00, "pending")]
