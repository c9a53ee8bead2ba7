"""The ledger partitioned by month (migration 0035): rows land in their month, the guarantees
the old unique keys gave still hold (across months, and under a race), rows of a month made
late move in, old months are archived with their accounts' positions carried forward, and the
reads by time prune the months they cannot need."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from billfold.config import Settings
from billfold.ledger.accounts import AccountKind, balance_at, open_account
from billfold.ledger.archive import DETACH_HOOKS
from billfold.ledger.engine import Ledger
from billfold.ledger.errors import ArchivedMoment
from billfold.ledger.history import EntryFilter, entries_page, last_seq_before
from billfold.ledger.reconcile import reconcile
from billfold.platform.db import create_pool
from billfold.platform.migrate import apply_migrations
from billfold.platform.partitions import detach, ensure, parse_month

OpenWallet = Callable[..., Awaitable[int]]
RAW_TRANSFER = """
INSERT INTO transfers (id, kind, code, amount_minor, currency, created_at)
VALUES ($1, 'transfer', 'raw', $2, 'USD', $3)
"""
RAW_ENTRY = """
WITH place AS (UPDATE accounts
                  SET version = version + 1, version_before = version,
                      version_xact = pg_current_xact_id()
                WHERE id = $1
                RETURNING version)
INSERT INTO entries
SELECT $1, place.version, $2, $3, 'USD', false, $4, $5 FROM place
"""


def _month(at: datetime) -> str:
    return f"{at:%Y_%m}"


async def _where(pool: asyncpg.Pool, table: str, transfer_id: int) -> set[str]:
    column = "id" if table == "transfers" else "transfer_id"
    rows = await pool.fetch(
        f"SELECT tableoid::regclass::text FROM {table} WHERE {column} = $1", transfer_id
    )
    return {r[0] for r in rows}


async def _system_pair(pool: asyncpg.Pool) -> tuple[int, int]:
    """Two accounts with no entries yet that may go below zero."""
    opened = []
    for _ in range(2):
        account = await open_account(
            pool,
            kind=AccountKind.SYSTEM,
            owner=f"test:{uuid.uuid4()}",
            currency="USD",
            overdraft_limit_minor=10**9,
        )
        opened.append(account.id)
    return opened[0], opened[1]


async def _raw_move(
    conn: asyncpg.Connection, transfer_id: int, debit: int, credit: int, amount: int, at: datetime
) -> None:
    """A transfer written by hand at `at`, its balances kept right, as the engine writes one."""
    async with conn.transaction():
        await conn.execute(RAW_TRANSFER, transfer_id, amount, at)
        for account, signed in ((debit, -amount), (credit, amount)):
            balance = await conn.fetchval(
                "UPDATE accounts SET posted_minor = posted_minor + $2 WHERE id = $1"
                " RETURNING posted_minor",
                account,
                signed,
            )
            await conn.execute(RAW_ENTRY, account, transfer_id, signed, balance, at)


async def test_a_transfer_and_its_entries_land_in_their_month(
    ledger: Ledger, pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    a, b = await open_wallet(100), await open_wallet()
    moved = await ledger.move(
        "c",
        str(uuid.uuid4()),
        debit_account_id=a,
        credit_account_id=b,
        amount_minor=7,
        currency="USD",
        code="p2p",
    )
    month = _month(moved.created_at.astimezone(UTC))
    assert await _where(pool, "transfers", moved.id) == {f"transfers_p{month}"}
    assert await _where(pool, "entries", moved.id) == {f"entries_p{month}"}


async def test_a_place_in_an_accounts_history_is_written_once_even_in_another_month(
    ledger: Ledger, pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """The key (account, place, time) would take place 1 again next month: the database refuses
    it, and refuses to wind an account's version back to make room."""
    a = await open_wallet(100)
    next_month = datetime.now(UTC).replace(day=1) + timedelta(days=40)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.UniqueViolationError, match="not the places"):
            async with conn.transaction():
                await conn.execute(RAW_TRANSFER, 10**13 + 50, 0, next_month)
                await conn.execute(
                    "INSERT INTO entries VALUES ($1, 1, $2, 5, 'USD', false, 105, $3)",
                    a,
                    10**13 + 50,
                    next_month,
                )
        wrongs = (
            "version = 0, version_before = 1, version_xact = pg_current_xact_id()",
            "version = 2",
            "version = 2, version_before = 1",
        )
        for wrong in wrongs:
            with pytest.raises(asyncpg.CheckViolationError, match="only grows"):
                await conn.execute(f"UPDATE accounts SET {wrong} WHERE id = $1", a)


async def test_a_hold_is_resolved_once_when_two_resolutions_race(
    ledger: Ledger, pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """Two transactions void the same hold at once, below the engine: the second waits for the
    first and is refused by hold_resolutions' key, as it was by the unique pending_id."""
    a, b = await open_wallet(100), await open_wallet()
    hold = await ledger.hold(
        "c",
        str(uuid.uuid4()),
        debit_account_id=a,
        credit_account_id=b,
        amount_minor=5,
        currency="USD",
        code="p2p",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    void = """INSERT INTO transfers (id, kind, code, pending_id, amount_minor, currency, created_at)
              VALUES ($1, 'void', 'raw', $2, 5, 'USD', now())"""
    first, second = await pool.acquire(), await pool.acquire()
    try:
        await first.execute("BEGIN")
        await first.execute(void, 10**13 + 60, hold.id)
        await second.execute("BEGIN")
        racing = asyncio.create_task(second.execute(void, 10**13 + 61, hold.id))
        await asyncio.sleep(0.2)
        assert not racing.done()  # waiting for the first's key
        await first.execute("ROLLBACK")
        await racing  # the first gave up: the second takes the key
        await second.execute("COMMIT")
        with pytest.raises(asyncpg.UniqueViolationError, match="hold_resolutions_pkey"):
            await first.execute(void, 10**13 + 62, hold.id)
    finally:
        await pool.release(first)
        await pool.release(second)
    assert (
        await pool.fetchval("SELECT transfer_id FROM hold_resolutions WHERE hold_id = $1", hold.id)
        == 10**13 + 61
    )
    # The void went in below the engine: its balances are released by hand, so that the ledger
    # still reconciles for the tests after this one.
    await pool.execute(
        "UPDATE accounts SET pending_debits_minor = pending_debits_minor - 5 WHERE id = $1", a
    )
    await pool.execute(
        "UPDATE accounts SET pending_credits_minor = pending_credits_minor - 5 WHERE id = $1", b
    )
    problems = (await reconcile(pool)).problems
    assert not [p for p in problems if f"account {a}:" in p or f"account {b}:" in p]


async def test_a_month_of_the_ledger_is_not_truncated(pool: asyncpg.Pool) -> None:
    month = _month(datetime.now(UTC))
    async with pool.acquire() as conn:
        for table in ("entries", "transfers"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(f"TRUNCATE {table}_p{month}")


@pytest.fixture(scope="module")
async def own_pool(isolated_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A database of this module's own: it makes and detaches months of the ledger."""
    assert isolated_settings.database_url is not None
    pool = await create_pool(isolated_settings.database_url, isolated_settings)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    yield pool
    await pool.close()


async def test_ledger_rows_of_a_month_made_late_move_in(own_pool: asyncpg.Pool) -> None:
    """Rows of a month with no partition yet wait in the default partition and move into their
    month when it is made; the append-only triggers let only that move through."""
    a, b = await _system_pair(own_pool)
    at = datetime(2044, 5, 9, tzinfo=UTC)
    async with own_pool.acquire() as conn:
        await _raw_move(conn, 10**13 + 70, a, b, 30, at)
    assert await _where(own_pool, "entries", 10**13 + 70) == {"entries_default"}
    made = await ensure(own_pool, 0, today=date(2044, 5, 1))
    assert made["entries"] == ["entries_p2044_05"] and made["transfers"] == ["transfers_p2044_05"]
    assert await _where(own_pool, "entries", 10**13 + 70) == {"entries_p2044_05"}
    assert await _where(own_pool, "transfers", 10**13 + 70) == {"transfers_p2044_05"}
    assert (await reconcile(own_pool)).ok


async def test_old_months_are_archived_and_the_ledger_goes_on_from_them(
    own_pool: asyncpg.Pool, settings: Settings
) -> None:
    """Months before a given one leave for `archive` with their accounts' positions carried
    forward: reconcile, history bounds and past balances go on from them. A month with a hold
    not yet resolved stays, and so does every later month of entries."""
    a, b = await _system_pair(own_pool)
    await ensure(own_pool, 2, today=date(2020, 1, 1))
    async with own_pool.acquire() as conn:
        await _raw_move(conn, 10**13 + 80, a, b, 50, datetime(2020, 1, 10, tzinfo=UTC))
        await _raw_move(conn, 10**13 + 81, b, a, 20, datetime(2020, 2, 10, tzinfo=UTC))
        # March holds an unresolved hold's legs (pending entries): it stays.
        async with conn.transaction():
            await conn.execute(
                """INSERT INTO transfers (id, kind, code, amount_minor, currency, expires_at,
                                          created_at)
                   VALUES ($1, 'hold', 'raw', 5, 'USD', now(), $2)""",
                10**13 + 82,
                datetime(2020, 3, 10, tzinfo=UTC),
            )
            for account, signed, column in (
                (a, -5, "pending_debits_minor"),
                (b, 5, "pending_credits_minor"),
            ):
                balance = await conn.fetchval(
                    f"UPDATE accounts SET {column} = {column} + 5, version = version + 1,"
                    " version_before = version, version_xact = pg_current_xact_id()"
                    " WHERE id = $1 RETURNING posted_minor",
                    account,
                )
                await conn.execute(
                    "INSERT INTO entries SELECT $1, version, $2, $3, 'USD', true, $4, $5"
                    " FROM accounts WHERE id = $1",
                    account,
                    10**13 + 82,
                    signed,
                    balance,
                    datetime(2020, 3, 10, tzinfo=UTC),
                )
    assert (await reconcile(own_pool)).ok
    lines: list[str] = []
    detached, kept = await detach(own_pool, parse_month("2020-04"), {}, lines.append, DETACH_HOOKS)
    assert {
        "entries_p2020_01",
        "entries_p2020_02",
        "transfers_p2020_01",
        "transfers_p2020_02",
    } <= set(detached)
    assert {"entries_p2020_03", "transfers_p2020_03"} <= set(kept)
    assert any("not yet posted or voided" in line for line in lines)
    archived = await own_pool.fetch(
        "SELECT account_id, seq, balance_minor FROM ledger_archived WHERE account_id IN ($1, $2)"
        " ORDER BY account_id",
        a,
        b,
    )
    assert [tuple(r) for r in archived] == [(a, 2, -30), (b, 2, 30)]
    report = await reconcile(own_pool)
    assert report.ok, report.problems
    assert await balance_at(own_pool, b, datetime(2020, 3, 20, tzinfo=UTC)) == 30
    assert await balance_at(own_pool, b, datetime(2020, 3, 1, tzinfo=UTC)) == 30
    with pytest.raises(ArchivedMoment, match="before 2020-03-01 are archived"):
        await balance_at(own_pool, b, datetime(2020, 2, 20, tzinfo=UTC))
    async with own_pool.acquire() as conn:
        assert await last_seq_before(conn, b, datetime(2020, 3, 1, tzinfo=UTC), False) == 2
        assert await last_seq_before(conn, b, datetime(2020, 4, 1, tzinfo=UTC), False) == 3
    # A broken carried-forward position is found.
    await own_pool.execute("UPDATE ledger_archived SET balance_minor = 31 WHERE account_id = $1", b)
    problems = (await reconcile(own_pool)).problems
    assert any(f"account {b}:" in p for p in problems)
    await own_pool.execute("UPDATE ledger_archived SET balance_minor = 30 WHERE account_id = $1", b)


async def test_reads_by_time_prune_the_months_they_cannot_need(pool: asyncpg.Pool) -> None:
    """A past balance and history's time bound read no month after the moment; a history
    page's joins from an entry to its transfer and other legs read one month each."""
    await ensure(pool, 2)
    this = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    later = (this + timedelta(days=40)).replace(day=1)
    moment = this - timedelta(days=20)
    plan = "\n".join(
        r[0]
        for r in await pool.fetch(
            f"""EXPLAIN SELECT balance_after_minor FROM entries
                 WHERE account_id = 1 AND created_at <= '{moment.isoformat()}'
                 ORDER BY account_seq DESC LIMIT 1"""
        )
    )
    assert f"entries_p{_month(this)}" not in plan and f"entries_p{_month(later)}" not in plan
    joined = "\n".join(
        r[0]
        for r in await pool.fetch(
            """EXPLAIN (ANALYZE, COSTS OFF)
               SELECT t.code FROM entries e
                 JOIN transfers t ON t.id = e.transfer_id AND t.created_at = e.created_at
                WHERE e.account_id = (SELECT account_id FROM entries LIMIT 1)
                ORDER BY e.account_seq DESC LIMIT 5"""
        )
    )
    assert "Subplans Removed" in joined or "never executed" in joined


async def test_a_page_reads_on_past_its_scan_when_the_filters_pass_few(
    ledger: Ledger, pool: asyncpg.Pool, open_wallet: OpenWallet
) -> None:
    """A page statement scans at most SCAN_PER_ROW entries a row asked; when its filters let
    fewer through, the next statement goes on below the last entry scanned, and the page is
    whole, newest first."""
    a, b = await open_wallet(1000), await open_wallet()
    for n in range(45):
        await ledger.move(
            "c",
            str(uuid.uuid4()),
            debit_account_id=a,
            credit_account_id=b,
            amount_minor=1,
            currency="USD",
            code="rare" if n in (2, 5) else "p2p",
        )
    async with pool.acquire() as conn:
        page = await entries_page(conn, a, 2**62, 0, EntryFilter(codes=["rare"]), 2)
        everything = await entries_page(conn, a, 2**62, 0, EntryFilter(), 100)
    # Places 4 and 7 (the funding took place 1): far below the first scan of 40 entries.
    assert [r["account_seq"] for r in page] == [7, 4]
    assert [r["account_seq"] for r in everything] == list(range(46, 0, -1))
