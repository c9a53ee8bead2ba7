"""The database itself enforces the ledger's invariants, whatever code writes to it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from billfold.ledger.accounts import get_account
from billfold.ledger.engine import Ledger

OpenWallet = Callable[..., Awaitable[int]]


async def _transfer(ledger: Ledger, debit: int, credit: int, amount: int) -> int:
    transfer = await ledger.move(
        "c",
        str(uuid.uuid4()),
        debit_account_id=debit,
        credit_account_id=credit,
        amount_minor=amount,
        currency="USD",
        code="p2p",
    )
    return transfer.id


async def test_transfers_and_entries_cannot_be_changed_or_deleted(
    pool: asyncpg.Pool, ledger: Ledger, open_wallet: OpenWallet
) -> None:
    """UPDATE, DELETE and TRUNCATE on transfers and entries are refused by triggers."""
    transfer_id = await _transfer(ledger, await open_wallet(100), await open_wallet(), 10)
    statements = [
        ("UPDATE transfers SET amount_minor = 1 WHERE id = $1", transfer_id),
        ("DELETE FROM transfers WHERE id = $1", transfer_id),
        ("UPDATE entries SET amount_minor = 1 WHERE transfer_id = $1", transfer_id),
        ("DELETE FROM entries WHERE transfer_id = $1", transfer_id),
    ]
    async with pool.acquire() as conn:
        for statement, arg in statements:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement, arg)
        for table in ("entries", "transfers"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(f"TRUNCATE {table} CASCADE")


async def test_wallet_cannot_be_overdrawn_by_any_sql(
    pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """CHECK constraints refuse a negative available balance and an overdraft limit on a wallet."""
    wallet = await open_wallet(100)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError, match="accounts_available_within_limit"):
            await conn.execute("UPDATE accounts SET posted_minor = -1 WHERE id = $1", wallet)
        with pytest.raises(asyncpg.CheckViolationError, match="accounts_available_within_limit"):
            await conn.execute(
                "UPDATE accounts SET pending_debits_minor = 101 WHERE id = $1", wallet
            )
        with pytest.raises(asyncpg.CheckViolationError, match="accounts_wallet_never_overdrawn"):
            await conn.execute(
                "UPDATE accounts SET overdraft_limit_minor = 10 WHERE id = $1", wallet
            )
    assert (await get_account(pool, wallet)).posted_minor == 100


async def test_unbalanced_transfer_is_refused_at_commit(
    pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """Entries written by hand that do not sum to zero fail the deferred check at commit."""
    a, b = await open_wallet(), await open_wallet()
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError, match="unbalanced"):
            async with conn.transaction():
                await _raw_transfer(conn, 10**13 + 1, [(a, -5), (b, 4)])
        # Balanced over two statements of one transaction: allowed, the check is deferred. The
        # balances are kept right by hand so that the ledger still reconciles afterwards.
        async with conn.transaction():
            await _raw_transfer(conn, 10**13 + 2, [(b, 5)])
            await conn.execute(
                "UPDATE accounts SET kind = 'system', overdraft_limit_minor = 5, posted_minor = -5,"
                " version = 1, version_before = 0, version_xact = pg_current_xact_id()"
                " WHERE id = $1",
                a,
            )
            await conn.execute(
                "INSERT INTO entries VALUES ($1, 1, $2, -5, 'USD', false, -5, now())",
                a,
                10**13 + 2,
            )
            await conn.execute("UPDATE accounts SET posted_minor = 5, version = 1 WHERE id = $1", b)


async def test_entries_cannot_join_an_earlier_transfer(
    pool: asyncpg.Pool, ledger: Ledger, open_wallet: OpenWallet
) -> None:
    """A committed transfer cannot gain entries later, even balanced ones."""
    a, b = await open_wallet(100), await open_wallet()
    transfer_id = await _transfer(ledger, a, b, 10)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.ForeignKeyViolationError, match="must be written"):
            async with conn.transaction():
                await conn.execute(
                    "UPDATE accounts SET version = 2, version_before = 1,"
                    " version_xact = pg_current_xact_id() WHERE id IN ($1, $2)",
                    a,
                    b,
                )
                await conn.execute(
                    """INSERT INTO entries VALUES ($1, 2, $3, -1, 'USD', false, 0, now()),
                                                  ($2, 2, $3, 1, 'USD', false, 0, now())""",
                    a,
                    b,
                    transfer_id,
                )


async def test_entry_in_another_currency_is_refused(
    pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """An entry's currency must be its account's, even when the transfer balances."""
    a, b = await open_wallet(), await open_wallet()
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError, match="which holds USD"):
            async with conn.transaction():
                await conn.execute(
                    """INSERT INTO transfers (id, kind, code, amount_minor, currency, created_at)
                       VALUES ($1, 'transfer', 'raw', 5, 'EUR', now())""",
                    10**13 + 3,
                )
                await conn.execute(
                    """INSERT INTO entries VALUES ($1, 1, $3, -5, 'EUR', false, -5, now()),
                                                  ($2, 1, $3, 5, 'EUR', false, 5, now())""",
                    a,
                    b,
                    10**13 + 3,
                )


async def _raw_transfer(
    conn: asyncpg.Connection, transfer_id: int, legs: list[tuple[int, int]]
) -> None:
    await conn.execute(
        """INSERT INTO transfers (id, kind, code, amount_minor, currency, created_at)
           VALUES ($1, 'transfer', 'raw', 5, 'USD', now())""",
        transfer_id,
    )
    for account_id, amount in legs:
        # The next place in the account's history, as the engine takes it (migration 0035).
        seq = await conn.fetchval(
            "UPDATE accounts SET version = version + 1, version_before = version,"
            " version_xact = pg_current_xact_id() WHERE id = $1"
            " RETURNING version",
            account_id,
        )
        await conn.execute(
            "INSERT INTO entries VALUES ($1, $2, $3, $4, 'USD', false, $4, now())",
            account_id,
            seq,
            transfer_id,
            amount,
        )


async def test_service_role_may_append_but_never_change_the_ledger(
    pool: asyncpg.Pool, ledger: Ledger, open_wallet: OpenWallet
) -> None:
    """The production role can read and insert transfers and entries, not update or delete."""
    transfer_id = await _transfer(ledger, await open_wallet(100), await open_wallet(), 10)
    async with pool.acquire() as conn:
        await conn.execute(
            "DO $$ BEGIN CREATE ROLE billfold_test_app; EXCEPTION WHEN duplicate_object THEN"
            " NULL; END $$"
        )
        await conn.execute("SELECT billfold_grant_service_role('billfold_test_app')")
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE billfold_test_app")
            assert await conn.fetchval("SELECT count(*) FROM transfers WHERE id = $1", transfer_id)
            await conn.execute("SAVEPOINT before")
            for statement in (
                "UPDATE transfers SET code = 'x' WHERE id = $1",
                "DELETE FROM entries WHERE transfer_id = $1",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                    await conn.execute(statement, transfer_id)
                await conn.execute("ROLLBACK TO SAVEPOINT before")
