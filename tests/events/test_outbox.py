"""The outbox holds an event if and only if its change committed, and the relay publishes each."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from billfold.config import Settings
from billfold.events.brokers import STREAM, RedisStreams
from billfold.events.outbox import Event, amount, with_command, write
from billfold.events.relay import Relay
from billfold.ledger.accounts import open_account
from billfold.ledger.engine import Ledger
from billfold.ledger.errors import LedgerError
from billfold.ledger.model import Account, AccountKind, Leg, Transfer
from billfold.platform.db import create_pool

OpenWallet = Callable[[int], Awaitable[int]]
# A step: from wallet, to wallet, amount (minor), and whether a retry of the same key is sent
# through a second engine (another process) at once.
steps = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(1, 150), st.booleans()),
    min_size=1,
    max_size=20,
)


@pytest.fixture(scope="module")
async def other_ledger(pool: asyncpg.Pool, settings: Settings) -> Any:
    engine = Ledger(pool, settings)
    await engine.start()
    yield engine
    await engine.stop()


async def stream_events(redis: Redis) -> list[dict[str, Any]]:
    """Every CloudEvent on the Redis stream, in stream order."""
    entries = await redis.xrange(STREAM)
    return [orjson.loads(fields["event"]) for _, fields in entries]


async def drain(relay: Relay) -> None:
    while await relay.publish_once():
        pass


def test_amounts_are_decimal_strings() -> None:
    assert (amount(1234, "USD"), amount(5, "USD"), amount(-250, "USD")) == (
        "12.34",
        "0.05",
        "-2.50",
    )
    assert amount(1234, "JPY") == "1234"


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=steps)
async def test_published_events_are_the_committed_transfers_in_order_per_account(
    plan: list[tuple[int, int, int, bool]],
    pool: asyncpg.Pool,
    redis: Redis,
    ledger: Ledger,
    other_ledger: Ledger,
    open_wallet: OpenWallet,
) -> None:
    """For an interleaving of committed, refused (no funds, same account) and raced retries
    (whose batches roll back), the published events are the committed transfers, each at least
    once, in commit order per account."""
    wallets = [await open_wallet(200) for _ in range(3)]
    calls = []
    for debit, credit, amount_minor, retry in plan:
        key = str(uuid.uuid4())
        move: dict[str, Any] = {
            "debit_account_id": wallets[debit],
            "credit_account_id": wallets[credit],
            "amount_minor": amount_minor,
            "currency": "USD",
            "code": "events_p2p",
        }
        calls.append(ledger.move("events", key, **move))
        if retry:
            calls.append(other_ledger.move("events", key, **move))
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(o, Transfer | LedgerError) for o in outcomes), outcomes
    committed = {o.id for o in outcomes if isinstance(o, Transfer)}

    await drain(Relay(pool, RedisStreams(redis)))

    published = [
        e
        for e in await stream_events(redis)
        if e.get("data", {}).get("code") == "events_p2p"
        and int(e["data"]["debit_account_id"]) in wallets
    ]
    assert {int(e["data"]["transfer_id"]) for e in published} == committed
    assert all(
        e["specversion"] == "1.0" and e["type"] == "billfold.transfer.completed.v1"
        for e in published
    )
    for wallet in wallets:
        ids = [
            int(e["data"]["transfer_id"])
            for e in published
            if str(wallet) in (e["data"]["debit_account_id"], e["data"]["credit_account_id"])
        ]
        # The account's commit order: its entries' sequence numbers (transfer ids are not,
        # across engines: each takes its ids in blocks of its own).
        booked = await pool.fetch(
            "SELECT transfer_id FROM entries WHERE account_id = $1 AND transfer_id = ANY($2)"
            " ORDER BY account_seq",
            wallet,
            list(committed),
        )
        assert list(dict.fromkeys(ids)) == [r["transfer_id"] for r in booked], (
            f"account {wallet}: events out of commit order"
        )
    unpublished = await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE published_at IS NULL AND data->>'code' = 'events_p2p'"
    )
    assert unpublished == 0


async def test_a_refused_transfer_writes_no_event(
    pool: asyncpg.Pool, ledger: Ledger, open_wallet: OpenWallet
) -> None:
    """A command the ledger refuses in its batch leaves no outbox row; its neighbour's stands."""
    poor, rich, payee = await open_wallet(10), await open_wallet(500), await open_wallet(1)
    refused, done = await asyncio.gather(
        ledger.move(
            "events",
            str(uuid.uuid4()),
            debit_account_id=poor,
            credit_account_id=payee,
            amount_minor=50,
            currency="USD",
            code="p2p",
        ),
        ledger.move(
            "events",
            str(uuid.uuid4()),
            debit_account_id=rich,
            credit_account_id=payee,
            amount_minor=50,
            currency="USD",
            code="p2p",
        ),
        return_exceptions=True,
    )
    assert isinstance(refused, LedgerError) and isinstance(done, Transfer)
    rows = await pool.fetch(
        "SELECT subject, data FROM outbox WHERE ordering_key = ANY($1::text[])",
        [f"account/{poor}", f"account/{rich}"],
    )
    assert [r["subject"] for r in rows] == [f"transfer/{done.id}"]


async def person_wallet(pool: asyncpg.Pool, owner: str, kind: AccountKind) -> int:
    account = await open_account(pool, kind=kind, owner=owner, currency="USD")
    return account.id


async def test_a_completed_transfer_names_the_people_whose_wallets_it_moves(
    pool: asyncpg.Pool, ledger: Ledger, bank: Account
) -> None:
    """from_user_id and to_user_id are the owners of wallets (`user:<uuid>`); null for the
    bank's account and for a person's receivable, which is no wallet."""
    ann, ben = uuid.uuid4(), uuid.uuid4()
    ann_wallet = await person_wallet(pool, f"user:{ann}", AccountKind.WALLET)
    ben_wallet = await person_wallet(pool, f"user:{ben}", AccountKind.WALLET)
    ben_owes = await open_account(
        pool,
        kind=AccountKind.RECEIVABLE,
        owner=f"user:{ben}",
        currency="USD",
        overdraft_limit_minor=10_000,
    )
    moves = [
        (bank.id, ann_wallet, 500),
        (ann_wallet, ben_wallet, 200),
        (ben_owes.id, ben_wallet, 1),
    ]
    made = [
        await ledger.move(
            "events",
            str(uuid.uuid4()),
            debit_account_id=debit,
            credit_account_id=credit,
            amount_minor=amount,
            currency="USD",
            code="test",
        )
        for debit, credit, amount in moves
    ]
    rows = await pool.fetch(
        "SELECT data FROM outbox WHERE subject = ANY($1::text[]) ORDER BY id",
        [f"transfer/{t.id}" for t in made],
    )
    assert [(r["data"]["from_user_id"], r["data"]["to_user_id"]) for r in rows] == [
        (None, str(ann)),
        (str(ann), str(ben)),
        (None, str(ben)),
    ]


async def test_a_transfer_of_three_legs_is_told_to_its_largest_credit_with_every_leg(
    pool: asyncpg.Pool, ledger: Ledger, bank: Account
) -> None:
    """An add-funds with its fee (the bank pays 10.30: 10.00 to the wallet, 0.30 in fees) is
    told from the bank to the person's wallet, not to the fee account, its legs listed; a
    two-leg transfer has no legs."""
    ann = uuid.uuid4()
    wallet = await person_wallet(pool, f"user:{ann}", AccountKind.WALLET)
    fees = await open_account(pool, kind=AccountKind.SYSTEM, owner="system", currency="USD")
    made = await ledger.transfer(
        "events",
        str(uuid.uuid4()),
        [Leg(bank.id, -1030, "USD"), Leg(fees.id, 30, "USD"), Leg(wallet, 1000, "USD")],
        code="add_funds",
    )
    data = await pool.fetchval("SELECT data FROM outbox WHERE subject = $1", f"transfer/{made.id}")
    assert (data["from_user_id"], data["to_user_id"]) == (None, str(ann))
    assert (data["debit_account_id"], data["credit_account_id"]) == (str(bank.id), str(wallet))
    assert data["amount"] == "10.30"
    assert sorted((leg["account_id"], leg["amount"]) for leg in data["legs"]) == sorted(
        [(str(bank.id), "-10.30"), (str(fees.id), "0.30"), (str(wallet), "10.00")]
    )


async def test_an_event_a_command_carries_is_written_only_if_the_ledger_commits_it(
    pool: asyncpg.Pool, ledger: Ledger, open_wallet: OpenWallet
) -> None:
    """outbox.with_command: the event of a committed command is written in its batch; the
    event of a command the ledger refuses is not; a replay of the key writes nothing again."""
    poor, rich, payee = await open_wallet(10), await open_wallet(500), await open_wallet(1)
    subjects = [f"thing/{uuid.uuid4()}" for _ in range(2)]
    keys = [str(uuid.uuid4()) for _ in range(2)]

    async def move(debit: int, n: int) -> Any:
        carried = Event("test.carried", subjects[n], f"account/{debit}", datetime.now(UTC), {})
        return await ledger.move(
            "events",
            keys[n],
            debit_account_id=debit,
            credit_account_id=payee,
            amount_minor=50,
            currency="USD",
            code="p2p",
            rows=[with_command(carried)],
        )

    outcomes = await asyncio.gather(move(poor, 0), move(rich, 1), return_exceptions=True)
    assert isinstance(outcomes[0], LedgerError) and isinstance(outcomes[1], Transfer)
    assert (await move(rich, 1)).replayed
    rows = await pool.fetch(
        "SELECT subject, type FROM outbox WHERE subject = ANY($1::text[])", subjects
    )
    assert [tuple(r) for r in rows] == [(subjects[1], "billfold.test.carried.v1")]


async def test_with_the_outbox_off_no_producer_writes_a_row(
    settings: Settings, bank: Account
) -> None:
    """BILLFOLD_OUTBOX=false: the session says so to every producer's statement, so neither
    `write`, nor the ledger's transfer.completed, nor an event a command carries is stored."""
    off = settings.model_copy(update={"outbox": False})
    assert off.database_url is not None
    pool = await create_pool(off.database_url, off)
    ledger = Ledger(pool, off)
    await ledger.start()
    subject = f"thing/{uuid.uuid4()}"
    try:
        wallet = await person_wallet(pool, f"user:{uuid.uuid4()}", AccountKind.WALLET)
        carried = Event("test.off", subject, f"account/{wallet}", datetime.now(UTC), {})
        async with pool.acquire() as conn, conn.transaction():
            await write(conn, [carried])
        moved = await ledger.move(
            "events",
            str(uuid.uuid4()),
            debit_account_id=bank.id,
            credit_account_id=wallet,
            amount_minor=5,
            currency="USD",
            code="test",
            rows=[with_command(carried)],
        )
        rows = await pool.fetchval(
            "SELECT count(*) FROM outbox WHERE subject = ANY($1::text[])",
            [subject, f"transfer/{moved.id}"],
        )
    finally:
        await ledger.stop()
        await pool.close()
    assert rows == 0
