"""Side rows: rows of another table that a command brings into its batch's transaction (the risk
assessment of a transfer). Written with the command's stored outcome, in the same statement:
once per key, however many requests and processes race on it, and never on a replay; the
ledger tells each whether it refused the command."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import pytest

from billfold.config import Settings
from billfold.ledger.engine import Ledger
from billfold.ledger.errors import InsufficientFunds, InvalidTransfer

OpenWallet = Callable[..., Awaitable[int]]
NOTES = "ledger_test_side_notes"
SIDE = {
    "test_side_note": f"""
INSERT INTO {NOTES} (key, note, at, score, flag, refused)
SELECT * FROM unnest($1::text::text[], $2::text::text[], $3::text::timestamptz[],
                     $4::text::real[], $5::text::boolean[], $6::text::boolean[])
"""
}
# Text the array literals must carry through unchanged: quotes, backslashes, separators
# (the unit separator the plain-word path joins with), braces, commas, spaces, "NULL".
AWKWARD = ['it\'s "quoted" \\ {a,b}', "a\x1fb", "NULL", "", " ", "ünï ✓"]


@pytest.fixture
async def two_ledgers(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[list[Ledger]]:
    """Two engines on one database, as two API workers have."""
    await pool.execute(
        f"""CREATE TABLE IF NOT EXISTS {NOTES} (key text, note text, at timestamptz,
                                                score real, flag boolean, refused boolean)"""
    )
    ledgers = [Ledger(pool, settings, side_statements=SIDE) for _ in range(2)]
    for ledger in ledgers:
        await ledger.start()
    yield ledgers
    for ledger in ledgers:
        await ledger.stop()


async def _notes(pool: asyncpg.Pool, key: str) -> list[asyncpg.Record]:
    return await pool.fetch(f"SELECT * FROM {NOTES} WHERE key = $1 ORDER BY note", key)


async def test_a_side_row_is_written_once_per_key_whoever_races_on_it(
    pool: asyncpg.Pool, two_ledgers: list[Ledger], open_wallet: OpenWallet
) -> None:
    """Eight requests with one key, four on each of two engines, each bringing its own row:
    one transfer, one row (one of theirs), and a later retry adds none."""
    payer, payee = await open_wallet(10_000), await open_wallet()
    key = f"side-{uuid.uuid4()}"
    at = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    async def send(n: int) -> int:
        ledger = two_ledgers[n % 2]
        transfer = await ledger.move(
            "test",
            key,
            debit_account_id=payer,
            credit_account_id=payee,
            amount_minor=700,
            currency="USD",
            code="p2p",
            rows=[("test_side_note", (key, f"try {n}", at, 0.25, n % 2 == 0))],
        )
        return transfer.id

    ids = await asyncio.gather(*(send(n) for n in range(8)))
    assert len(set(ids)) == 1
    assert await send(8) == ids[0]
    rows = await _notes(pool, key)
    assert len(rows) == 1
    assert rows[0]["note"] in {f"try {n}" for n in range(8)}
    assert (rows[0]["at"], rows[0]["score"], rows[0]["refused"]) == (at, 0.25, False)
    balance = await pool.fetchval("SELECT posted_minor FROM accounts WHERE id = $1", payer)
    assert balance == 10_000 - 700


async def test_side_rows_carry_any_text_and_come_with_a_refusal_too(
    pool: asyncpg.Pool, two_ledgers: list[Ledger], open_wallet: OpenWallet
) -> None:
    """Awkward text, NULLs and many rows in one batch arrive as sent. A command the ledger
    refuses stores its refusal, and its rows with it, told that it was refused."""
    payer, payee = await open_wallet(1_000), await open_wallet()
    keys = [f"side-{uuid.uuid4()}" for _ in AWKWARD]
    ledger = two_ledgers[0]

    async def send(key: str, note: str, amount: int) -> None:
        await ledger.move(
            "test",
            key,
            debit_account_id=payer,
            credit_account_id=payee,
            amount_minor=amount,
            currency="USD",
            code="p2p",
            rows=[("test_side_note", (key, note, None, None, None))],
        )

    await asyncio.gather(*(send(k, note, 10) for k, note in zip(keys, AWKWARD, strict=True)))
    for key, note in zip(keys, AWKWARD, strict=True):
        rows = await _notes(pool, key)
        assert [(r["note"], r["at"], r["score"], r["flag"], r["refused"]) for r in rows] == [
            (note, None, None, None, False)
        ]
    refused = f"side-{uuid.uuid4()}"
    with pytest.raises(InsufficientFunds):
        await send(refused, "too much", 1_000_000)
    assert [(r["note"], r["refused"]) for r in await _notes(pool, refused)] == [("too much", True)]


async def test_a_side_row_for_a_statement_the_ledger_was_not_given_is_refused(
    pool: asyncpg.Pool, two_ledgers: list[Ledger], open_wallet: OpenWallet
) -> None:
    payer, payee = await open_wallet(1_000), await open_wallet()
    key = f"side-{uuid.uuid4()}"
    with pytest.raises(InvalidTransfer, match="no side statement 'nope'"):
        await two_ledgers[0].move(
            "test",
            key,
            debit_account_id=payer,
            credit_account_id=payee,
            amount_minor=10,
            currency="USD",
            code="p2p",
            rows=[("nope", (key,))],
        )
    assert not await two_ledgers[0].has_outcome("test", key)
