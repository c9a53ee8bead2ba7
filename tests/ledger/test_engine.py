"""The engine one command at a time: transfers, holds, reversals, idempotency, errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from billfold.config import Settings
from billfold.ledger import errors
from billfold.ledger.accounts import balance_at, get_account, open_account
from billfold.ledger.engine import Ledger
from billfold.ledger.model import AccountKind, Kind, Leg, Transfer
from billfold.ledger.store import WRITE_BATCH_NAME
from billfold.platform.db import create_pool

OpenWallet = Callable[..., Awaitable[int]]


def new_key() -> str:
    return str(uuid.uuid4())


def p2p(
    ledger: Ledger,
    debit: int,
    credit: int,
    amount_minor: int,
    key: str | None = None,
    client: str = "c",
) -> Awaitable[Transfer]:
    """A USD P2P transfer between two accounts, under a fresh key unless given one."""
    return ledger.move(
        client,
        new_key() if key is None else key,
        debit_account_id=debit,
        credit_account_id=credit,
        amount_minor=amount_minor,
        currency="USD",
        code="p2p",
    )


async def test_transfer_moves_money_and_records_running_balances(
    ledger: Ledger, pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """A two-leg transfer debits one wallet, credits the other and records each balance after."""
    alice, bob = await open_wallet(10_000), await open_wallet(500)
    transfer = await p2p(ledger, alice, bob, 2_500)
    assert transfer.kind is Kind.TRANSFER
    assert transfer.amount_minor == 2_500
    assert transfer.entry_for(alice).balance_after_minor == 7_500
    assert transfer.entry_for(bob).balance_after_minor == 3_000
    assert (await get_account(pool, alice)).posted_minor == 7_500
    assert (await get_account(pool, bob)).posted_minor == 3_000
    assert (await get_account(pool, bob)).version == 2


async def test_multi_leg_transfer_balances_per_currency(
    ledger: Ledger, pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """An N-leg transfer splits money among several accounts in one journal entry."""
    payer, a, b = await open_wallet(1_000), await open_wallet(), await open_wallet()
    legs = [Leg(payer, -900, "USD"), Leg(a, 600, "USD"), Leg(b, 300, "USD")]
    transfer = await ledger.transfer("c", new_key(), legs, code="split")
    assert len(transfer.entries) == 3
    assert (await get_account(pool, b)).posted_minor == 300


async def test_insufficient_funds_changes_nothing(
    ledger: Ledger, pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """A debit beyond the available balance is refused, naming the account and what it holds."""
    alice, bob = await open_wallet(100), await open_wallet()
    with pytest.raises(errors.InsufficientFunds) as refused:
        await p2p(ledger, alice, bob, 101)
    assert refused.value.fields == {"account_id": alice, "available_minor": 100}
    assert (await get_account(pool, alice)).posted_minor == 100
    assert (await get_account(pool, bob)).version == 0


async def test_replay_returns_first_outcome_and_reused_key_is_refused(
    ledger: Ledger, open_wallet: OpenWallet
) -> None:
    """The same key and request replays the transfer; the same key with another request fails."""
    alice, bob = await open_wallet(1_000), await open_wallet()
    key = new_key()
    first = await p2p(ledger, alice, bob, 100, key=key)
    again = await p2p(ledger, alice, bob, 100, key=key)
    assert again.replayed and not first.replayed
    assert again.id == first.id and again.entries == first.entries
    with pytest.raises(errors.IdempotencyKeyReused):
        await p2p(ledger, alice, bob, 101, key=key)
    other_client = await p2p(ledger, alice, bob, 100, key=key, client="other")
    assert other_client.id != first.id


async def test_stored_failure_is_never_turned_into_success(
    ledger: Ledger, bank, open_wallet: OpenWallet
) -> None:
    """A retry after a refusal gets the refusal again, even once the money is there."""
    alice, bob = await open_wallet(50), await open_wallet()
    key = new_key()
    request = {
        "debit_account_id": alice,
        "credit_account_id": bob,
        "amount_minor": 80,
        "currency": "USD",
        "code": "p2p",
    }
    with pytest.raises(errors.InsufficientFunds):
        await ledger.move("c", key, **request)
    await ledger.move(
        "c",
        new_key(),
        debit_account_id=bank.id,
        credit_account_id=alice,
        amount_minor=1_000,
        currency="USD",
        code="add_funds",
    )
    with pytest.raises(errors.InsufficientFunds) as replay:
        await ledger.move("c", key, **request)
    assert replay.value.fields["available_minor"] == 50


async def test_hold_reserves_then_partial_post_releases_the_rest(
    ledger: Ledger, pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """A hold lowers available at once; posting part of it moves that part and frees the rest."""
    alice, bob = await open_wallet(1_000), await open_wallet()
    hold = await ledger.hold(
        "c",
        new_key(),
        debit_account_id=alice,
        credit_account_id=bob,
        amount_minor=700,
        currency="USD",
        code="cash_out",
    )
    held = await get_account(pool, alice)
    assert (held.posted_minor, held.available_minor) == (1_000, 300)
    assert (await get_account(pool, bob)).pending_credits_minor == 700
    with pytest.raises(errors.InsufficientFunds):
        await p2p(ledger, alice, bob, 301)
    post = await ledger.post("c", new_key(), hold.id, amount_minor=400)
    assert post.pending_id == hold.id and post.amount_minor == 400
    after = await get_account(pool, alice)
    assert (after.posted_minor, after.pending_debits_minor) == (600, 0)
    bob_after = await get_account(pool, bob)
    assert (bob_after.posted_minor, bob_after.pending_credits_minor) == (400, 0)
    with pytest.raises(errors.HoldNotPending):
        await ledger.void("c", new_key(), hold.id)


async def test_void_releases_and_expired_hold_cannot_post(
    ledger: Ledger, pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """Voiding frees the reserved money; a hold past its expiry can be voided but not posted."""
    alice, bob = await open_wallet(500), await open_wallet()
    hold = await ledger.hold(
        "c",
        new_key(),
        debit_account_id=alice,
        credit_account_id=bob,
        amount_minor=500,
        currency="USD",
        code="p2p",
    )
    void = await ledger.void("c", new_key(), hold.id)
    assert void.kind is Kind.VOID and void.entries == ()
    assert (await get_account(pool, alice)).available_minor == 500
    expired = await ledger.hold(
        "c",
        new_key(),
        debit_account_id=alice,
        credit_account_id=bob,
        amount_minor=100,
        currency="USD",
        code="p2p",
        expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    with pytest.raises(errors.HoldExpired):
        await ledger.post("c", new_key(), expired.id)
    await ledger.void("c", new_key(), expired.id)
    assert (await get_account(pool, alice)).available_minor == 500


async def test_post_refuses_non_holds_and_too_much(ledger: Ledger, open_wallet: OpenWallet) -> None:
    """Posting a plain transfer, a missing id, or more than was held is refused."""
    alice, bob = await open_wallet(500), await open_wallet()
    plain = await p2p(ledger, alice, bob, 1)
    with pytest.raises(errors.NotAHold):
        await ledger.post("c", new_key(), plain.id)
    with pytest.raises(errors.TransferNotFound):
        await ledger.post("c", new_key(), 10**12)
    hold = await ledger.hold(
        "c",
        new_key(),
        debit_account_id=alice,
        credit_account_id=bob,
        amount_minor=100,
        currency="USD",
        code="p2p",
    )
    with pytest.raises(errors.InvalidTransfer):
        await ledger.post("c", new_key(), hold.id, amount_minor=101)


async def test_reversal_never_exceeds_the_original(
    ledger: Ledger, pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """Partial reversals add up to the original at most; a further one is refused."""
    alice, bob = await open_wallet(1_000), await open_wallet()
    original = await p2p(ledger, alice, bob, 600)
    first = await ledger.reverse("c", new_key(), original.id, amount_minor=200)
    assert first.reverses_id == original.id
    assert first.entry_for(alice).amount_minor == 200
    with pytest.raises(errors.ReversalExceedsOriginal) as refused:
        await ledger.reverse("c", new_key(), original.id, amount_minor=401)
    assert refused.value.fields["remaining_minor"] == 400
    await ledger.reverse("c", new_key(), original.id)
    with pytest.raises(errors.ReversalExceedsOriginal):
        await ledger.reverse("c", new_key(), original.id, amount_minor=1)
    assert (await get_account(pool, alice)).posted_minor == 1_000
    with pytest.raises(errors.NotReversible):
        await ledger.reverse("c", new_key(), first.id)


@pytest.mark.parametrize(
    ("legs", "message"),
    [
        ([Leg(1, -5, "USD"), Leg(2, 4, "USD")], "sum to -1"),
        ([Leg(1, 0, "USD"), Leg(2, 0, "USD")], "non-zero"),
        ([Leg(1, -5, "USD"), Leg(1, 5, "USD")], "appears twice"),
        ([Leg(1, -5, "usd"), Leg(2, 5, "usd")], "ISO 4217"),
        ([Leg(1, -5, "USD")], "2 to 64 legs"),
    ],
)
async def test_malformed_transfers_are_refused_before_the_database(
    ledger: Ledger, legs: list[Leg], message: str
) -> None:
    """Unbalanced, zero, repeated-account, bad-currency and one-leg transfers name the problem."""
    with pytest.raises(errors.InvalidTransfer, match=message):
        await ledger.transfer("c", new_key(), legs, code="p2p")


async def test_unknown_account_and_currency_mismatch(
    ledger: Ledger, pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """Legs must name existing accounts in their own currency."""
    alice = await open_wallet(100)
    euro = await open_account(pool, kind=AccountKind.WALLET, owner="t", currency="EUR")
    with pytest.raises(errors.AccountNotFound):
        await p2p(ledger, alice, 10**12, 1)
    with pytest.raises(errors.CurrencyMismatch):
        await p2p(ledger, alice, euro.id, 1)


async def test_balance_at_a_past_moment(
    ledger: Ledger, pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """The running balances give an account's balance at any past moment."""
    alice, bob = await open_wallet(1_000), await open_wallet()
    first = await p2p(ledger, alice, bob, 100)
    await p2p(ledger, alice, bob, 300)
    assert await balance_at(pool, alice, first.created_at) == 900
    assert await balance_at(pool, alice, datetime.now(UTC)) == 600
    assert await balance_at(pool, alice, first.created_at - timedelta(days=1)) == 0


async def test_expired_holds_are_voided_once_by_concurrent_sweeps(
    ledger: Ledger, pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """Sweeps void every expired hold, releasing its money; running three at once voids each
    hold once. A hold not yet expired stays."""
    alice, bob = await open_wallet(1_000), await open_wallet()
    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = [
        await ledger.hold(
            "c",
            new_key(),
            debit_account_id=alice,
            credit_account_id=bob,
            amount_minor=100,
            currency="USD",
            code="p2p",
            expires_at=past,
        )
        for _ in range(3)
    ]
    live = await ledger.hold(
        "c",
        new_key(),
        debit_account_id=alice,
        credit_account_id=bob,
        amount_minor=50,
        currency="USD",
        code="p2p",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    assert (await get_account(pool, alice)).available_minor == 650
    voided = await asyncio.gather(*(ledger.void_expired_holds() for _ in range(3)))
    assert sum(voided) >= 3
    voids = await pool.fetch(
        "SELECT pending_id FROM transfers WHERE kind = 'void' AND pending_id = ANY($1::bigint[])",
        [h.id for h in [*expired, live]],
    )
    assert sorted(r["pending_id"] for r in voids) == sorted(h.id for h in expired)
    account = await get_account(pool, alice)
    assert (account.available_minor, account.pending_debits_minor) == (950, 50)


async def test_a_frozen_account_is_not_debited_but_holds_still_resolve(
    ledger: Ledger, pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """A frozen account refuses transfers and holds out of it, and the refusal is the stored
    outcome of its key; money still comes in, and an existing hold can still be voided."""
    alice, bob = await open_wallet(10_000), await open_wallet(10_000)
    hold = await ledger.hold(
        "c", new_key(), debit_account_id=alice, credit_account_id=bob, amount_minor=1_000,
        currency="USD", code="checkout",
    )  # fmt: skip
    await pool.execute("UPDATE accounts SET frozen = true WHERE id = $1", alice)
    key = new_key()
    move = {"debit_account_id": alice, "credit_account_id": bob, "amount_minor": 100}
    with pytest.raises(errors.AccountFrozen):
        await ledger.move("c", key, **move, currency="USD", code="p2p")
    with pytest.raises(errors.AccountFrozen):
        await ledger.hold("c", new_key(), **move, currency="USD", code="checkout")
    await ledger.move(
        "c", new_key(), debit_account_id=bob, credit_account_id=alice, amount_minor=50,
        currency="USD", code="p2p",
    )  # fmt: skip
    await ledger.void("c", new_key(), hold.id)
    await pool.execute("UPDATE accounts SET frozen = false WHERE id = $1", alice)
    with pytest.raises(errors.AccountFrozen):  # the key's stored outcome, never a success
        await ledger.move("c", key, **move, currency="USD", code="p2p")
    account = await get_account(pool, alice)
    assert (account.posted_minor, account.pending_debits_minor) == (10_050, 0)


async def test_a_command_postgresql_cannot_store_fails_alone(
    ledger: Ledger, pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """A key with a NUL (no PostgreSQL text holds one) fails its own command; the commands
    batched with it commit, and the ledger goes on."""
    alice, bob = await open_wallet(1_000), await open_wallet()

    results = await asyncio.gather(
        p2p(ledger, alice, bob, 100),
        p2p(ledger, alice, bob, 100, key="bad\x00key"),
        p2p(ledger, alice, bob, 100),
        return_exceptions=True,
    )
    assert [isinstance(r, Exception) for r in results] == [False, True, False]
    assert "NUL" in str(results[1])
    assert (await get_account(pool, alice)).posted_minor == 800
    await p2p(ledger, alice, bob, 100)
    assert (await get_account(pool, bob)).posted_minor == 300


async def test_a_warmed_up_ledger_starts_with_a_ready_connection_for_each_batch_slot(
    pool: asyncpg.Pool, settings: Settings, open_wallet: OpenWallet
) -> None:
    """warm_up opens a connection per batch slot with the write statement prepared, so the first
    batches after a start do not pay for it; they run on those connections, and stop gives
    them back."""

    def in_use() -> int:
        return pool.get_size() - pool.get_idle_size()

    alice, bob = await open_wallet(1_000), await open_wallet()
    before = in_use()
    ledger = Ledger(pool, settings)
    await ledger.warm_up()
    slots = settings.batch_concurrency
    assert in_use() == before + slots
    for conn in ledger.warm_connections:
        prepared = await conn.fetchval(
            "SELECT count(*) FROM pg_prepared_statements WHERE name = $1", WRITE_BATCH_NAME
        )
        assert prepared == 1
    await ledger.start()
    try:
        assert (await p2p(ledger, alice, bob, 250)).amount_minor == 250
        assert in_use() == before + slots
    finally:
        await ledger.stop()
    assert in_use() == before


async def test_a_ledger_that_stays_busy_tells_the_client_to_retry_not_the_databases_words(
    database_url: str, settings: Settings, open_wallet: OpenWallet
) -> None:
    """Issue 25: the client's 503 said the database's own error ("canceling statement due to
    lock timeout", a deadlock's); it says the ledger is busy and to retry with the same key."""
    hurried = settings.model_copy(update={"lock_timeout_ms": 50, "batch_retries": 0})
    pool = await create_pool(database_url, hurried, size=2)
    ledger = Ledger(pool, hurried)
    await ledger.start()
    alice, bob = await open_wallet(1_000), await open_wallet()
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", alice)
            with pytest.raises(errors.LedgerBusy) as busy:
                await p2p(ledger, alice, bob, 100)
    finally:
        await ledger.stop()
        await pool.close()
    assert busy.value.detail == (
        "the ledger stayed busy after 1 tries; retry with the same idempotency key"
    )
