"""Opening and reading accounts. Balances change only through the engine's transfers."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from billfold.ledger.errors import AccountNotFound, ArchivedMoment, InvalidTransfer
from billfold.ledger.model import Account, AccountKind, check_currency

ACCOUNT_COLUMNS = """
id, kind, owner, name, currency, posted_minor, pending_debits_minor, pending_credits_minor,
overdraft_limit_minor, max_balance_minor, version, created_at
"""


def check_open_account(
    kind: AccountKind, currency: str, overdraft_limit_minor: int, max_balance_minor: int | None
) -> None:
    check_currency(currency)
    if overdraft_limit_minor < 0:
        raise InvalidTransfer(f"overdraft limit {overdraft_limit_minor} must not be negative")
    if kind is AccountKind.WALLET and overdraft_limit_minor != 0:
        raise InvalidTransfer("a wallet cannot have an overdraft limit", field="overdraft_limit")
    if max_balance_minor is not None and max_balance_minor < 0:
        raise InvalidTransfer(f"maximum balance {max_balance_minor} must not be negative")


async def open_account(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    kind: AccountKind,
    owner: str,
    currency: str,
    name: str | None = None,
    overdraft_limit_minor: int = 0,
    max_balance_minor: int | None = None,
) -> Account:
    """Open an account with a zero balance. A named account is opened once: a second call with
    the same name returns the existing one (system accounts are opened this way at start-up)."""
    check_open_account(kind, currency, overdraft_limit_minor, max_balance_minor)
    row = await conn.fetchrow(
        f"""
        INSERT INTO accounts (kind, owner, name, currency, overdraft_limit_minor, max_balance_minor)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (name) WHERE name IS NOT NULL DO NOTHING
        RETURNING {ACCOUNT_COLUMNS}
        """,
        kind.value,
        owner,
        name,
        currency,
        overdraft_limit_minor,
        max_balance_minor,
    )
    if row is None:
        row = await conn.fetchrow(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = $1", name)
    assert row is not None
    return account_from_row(row)


async def get_account(conn: asyncpg.Connection | asyncpg.Pool, account_id: int) -> Account:
    row = await conn.fetchrow(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1", account_id)
    if row is None:
        raise AccountNotFound(f"account {account_id} does not exist", account_id=account_id)
    return account_from_row(row)


async def posted_balance(conn: asyncpg.Connection | asyncpg.Pool, account_id: int) -> int:
    """The account's posted balance now (its pending holds aside)."""
    value = await conn.fetchval("SELECT posted_minor FROM accounts WHERE id = $1", account_id)
    if value is None:
        raise AccountNotFound(f"account {account_id} does not exist", account_id=account_id)
    return int(value)


async def find_account(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> Account | None:
    """The account opened with `name` (receivables, system accounts), if there is one."""
    row = await conn.fetchrow(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = $1", name)
    return account_from_row(row) if row is not None else None


async def balance_at(conn: asyncpg.Connection | asyncpg.Pool, account_id: int, at: datetime) -> int:
    """The account's posted balance at a past moment, read from its entries' running balances
    (the months after the moment pruned), or from the position its archived months carried
    forward (ledger.archive); ArchivedMoment if the moment falls inside those months."""
    row = await conn.fetchrow(
        """
        SELECT (SELECT balance_after_minor FROM entries
                 WHERE account_id = $1 AND created_at <= $2
                 ORDER BY account_seq DESC LIMIT 1) AS balance,
               x.balance_minor AS archived, x.through
          FROM (SELECT 1) one LEFT JOIN ledger_archived x ON x.account_id = $1
        """,
        account_id,
        at,
    )
    if row["balance"] is not None:
        return int(row["balance"])
    if row["through"] is None:
        return 0
    if at < row["through"]:
        raise ArchivedMoment(
            f"account {account_id}'s entries before {row['through']:%Y-%m-%d} are archived",
            account_id=account_id,
        )
    return int(row["archived"])


def account_from_row(row: asyncpg.Record) -> Account:
    return Account(
        id=row["id"],
        kind=AccountKind(row["kind"]),
        owner=row["owner"],
        name=row["name"],
        currency=row["currency"],
        posted_minor=row["posted_minor"],
        pending_debits_minor=row["pending_debits_minor"],
        pending_credits_minor=row["pending_credits_minor"],
        overdraft_limit_minor=row["overdraft_limit_minor"],
        max_balance_minor=row["max_balance_minor"],
        version=row["version"],
        created_at=row["created_at"],
    )


# Far beyond any real position; the clearing account mirrors money held at the bank, so it runs
# negative by everything that was ever deposited.
CLEARING_OVERDRAFT_MINOR = 10**15


async def open_clearing_account(
    conn: asyncpg.Connection | asyncpg.Pool, currency: str, name: str | None = None
) -> Account:
    """The system account money enters from and leaves to the bank, one per currency."""
    return await open_system_account(conn, "bank_clearing", currency, overdraft=True, name=name)


async def set_owes(conn: asyncpg.Connection | asyncpg.Pool, account_id: int, owes: bool) -> None:
    """Block (or unblock) the account's debits, but for collections, while its owner owes money.
    The update waits for any batch holding the account's lock, so once it returns no other
    debit can commit (see apply._check_debit_allowed)."""
    await conn.execute("UPDATE accounts SET owes = $2 WHERE id = $1", account_id, owes)


async def open_system_account(
    conn: asyncpg.Connection | asyncpg.Pool,
    purpose: str,
    currency: str,
    *,
    overdraft: bool,
    name: str | None = None,
) -> Account:
    """A named system account (bank clearing, fee revenue, ...), opened once; `name` replaces
    the usual `system:<purpose>:<currency>`."""
    return await open_account(
        conn,
        kind=AccountKind.SYSTEM,
        owner="system",
        currency=currency,
        name=name or f"system:{purpose}:{currency}",
        overdraft_limit_minor=CLEARING_OVERDRAFT_MINOR if overdraft else 0,
    )
