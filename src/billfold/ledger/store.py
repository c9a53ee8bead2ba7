"""The ledger's SQL: every statement the engine runs, each one round trip for a whole batch."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from billfold.ledger.apply import AccountState, Target
from billfold.ledger.model import Entry, Kind, SideRow, Transfer

# Every statement of a batch finds its rows by primary key. The planner, seeing a thousand keys
# and a table it thinks small or bloated, may choose to hash a whole table instead; for a batch
# that is always slower, and it grows with the table. So the engine's connections rule that out.
# The batch statements are the same every time but for their parameters: a generic plan saves
# planning the wide write statement again for every batch (about 2 ms). These are session
# settings, made once when the engine takes a connection from the pool (whose reset undoes them
# when it is given back), so that a batch's BEGIN rides alone and costs PostgreSQL nothing more.
# standard_conforming_strings: the write's literals (write_batch_and_commit) double their quotes
# and leave backslashes alone.
BATCH_SESSION = """
SET plan_cache_mode = force_generic_plan;
SET enable_seqscan = off;
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SET standard_conforming_strings = on;
"""

# Rows come back locked in ascending id order: the subquery's ORDER BY runs below its row locks,
# so every batch takes its locks in the same order and batches cannot deadlock on accounts.
# clock_timestamp() is read after the locks, so an account's entries get non-decreasing times.
LOCK_ACCOUNTS = """
SELECT a.*, clock_timestamp() AS now FROM (
    SELECT id, currency, posted_minor, pending_debits_minor, pending_credits_minor,
           overdraft_limit_minor, max_balance_minor, version, frozen, owes
      FROM accounts WHERE id = ANY($1::bigint[])
     ORDER BY id FOR NO KEY UPDATE
) a
"""

CLOCK = "SELECT clock_timestamp()"

TARGET_RESOLUTION = """
SELECT t.id,
       EXISTS (SELECT 1 FROM hold_resolutions r WHERE r.hold_id = t.id) AS resolved,
       coalesce((SELECT sum(r.amount_minor) FROM transfers r WHERE r.reverses_id = t.id), 0)::bigint
           AS reversed_minor
  FROM unnest($1::bigint[]) AS t(id)
"""

LOAD_TRANSFERS = """
SELECT t.id, t.kind, t.code, t.amount_minor, t.currency, t.pending_id, t.reverses_id,
       t.expires_at, t.metadata, t.created_at,
       coalesce((SELECT jsonb_agg(jsonb_build_array(e.account_id, e.account_seq, e.amount_minor,
                                                    e.currency, e.pending, e.balance_after_minor)
                                  ORDER BY e.account_id)
                   FROM entries e WHERE e.transfer_id = t.id AND e.created_at = t.created_at),
                '[]'::jsonb) AS entries
  FROM transfers t WHERE t.id = ANY($1::bigint[])
"""

# Holds past their expiry and not yet posted or voided, oldest first (transfers_holds_idx).
EXPIRED_HOLDS = """
SELECT h.id FROM transfers h
 WHERE h.kind = 'hold' AND h.expires_at <= now()
   AND NOT EXISTS (SELECT 1 FROM hold_resolutions r WHERE r.hold_id = h.id)
 ORDER BY h.expires_at, h.id
 LIMIT $1
"""

# The primary's WAL insert position as a byte offset: read after a commit, at or past its end.
WAL_POSITION = "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint"

HAS_OUTCOME = "SELECT 1 FROM idempotency_keys WHERE client_id = $1 AND key = $2"

LOAD_OUTCOMES = """
SELECT k.client_id, k.key, k.request_hash, k.transfer_id, k.error
  FROM idempotency_keys k
  JOIN unnest($1::text[], $2::text[]) AS w(client_id, key)
    ON k.client_id = w.client_id AND k.key = w.key
"""

# One statement writes a whole batch: transfers, entries, netted account balances and the
# idempotency outcomes. An outcome whose key another transaction stored first fails it with a
# unique violation of idempotency_keys' primary key (waiting for that transaction, as any insert
# of the key would): the caller rolls the batch back. It is prepared by name once a connection
# (prepare_batch_session) and executed by name with its COMMIT in one simple query: the commit
# costs no round trip of its own.
WRITE_BATCH_NAME = "billfold_write_batch"
WRITE_BATCH = """
WITH new_transfers AS (
    INSERT INTO transfers (id, kind, code, pending_id, reverses_id, amount_minor, currency,
                           expires_at, metadata, created_at)
    SELECT u.*, $10::timestamptz
      FROM unnest($1::text::bigint[], $2::text::text[], $3::text::text[], $4::text::bigint[],
                  $5::text::bigint[], $6::text::bigint[], $7::text::text[],
                  $8::text::timestamptz[], $9::text::jsonb[]) AS u
),
new_entries AS (
    INSERT INTO entries (account_id, account_seq, transfer_id, amount_minor, currency, pending,
                         balance_after_minor, created_at)
    SELECT u.*, $10::timestamptz
      FROM unnest($11::text::bigint[], $12::text::bigint[], $13::text::bigint[],
                  $14::text::bigint[], $15::text::text[], $16::text::boolean[],
                  $17::text::bigint[]) AS u
),
balances AS (
    UPDATE accounts a
       SET posted_minor = a.posted_minor + d.posted,
           pending_debits_minor = a.pending_debits_minor + d.pending_debits,
           pending_credits_minor = a.pending_credits_minor + d.pending_credits,
           version = a.version + d.version,
           version_before = a.version,
           version_xact = pg_current_xact_id()
      FROM unnest($18::text::bigint[], $19::text::bigint[], $20::text::bigint[],
                  $21::text::bigint[], $22::text::bigint[])
           AS d(id, posted, pending_debits, pending_credits, version)
     WHERE a.id = d.id
)
INSERT INTO idempotency_keys (client_id, key, request_hash, transfer_id, error, created_at)
SELECT u.*, $10::timestamptz
  FROM unnest($23::text::text[], $24::text::text[], $25::text::bytea[],
              $26::text::bigint[], $27::text::jsonb[]) AS u
"""


async def lock_accounts(
    conn: asyncpg.Connection, account_ids: Sequence[int]
) -> tuple[dict[int, AccountState], datetime]:
    rows = await conn.fetch(LOCK_ACCOUNTS, account_ids)
    if not rows:
        return {}, await conn.fetchval(CLOCK)
    # Positional: the row's first ten columns are AccountState's first ten fields, in order.
    accounts = {r[0]: AccountState(*r[:10]) for r in rows}
    return accounts, max(r[10] for r in rows)


async def load_transfers(conn: asyncpg.Connection, ids: Iterable[int]) -> dict[int, Transfer]:
    rows = await conn.fetch(LOAD_TRANSFERS, list(ids))
    return {r["id"]: transfer_from_row(r) for r in rows}


def transfer_from_row(row: asyncpg.Record, replayed: bool = False) -> Transfer:
    return Transfer(
        id=row["id"],
        kind=Kind(row["kind"]),
        code=row["code"],
        amount_minor=row["amount_minor"],
        currency=row["currency"],
        pending_id=row["pending_id"],
        reverses_id=row["reverses_id"],
        expires_at=row["expires_at"],
        metadata=row["metadata"],
        created_at=row["created_at"],
        entries=tuple(Entry(*e) for e in row["entries"]),
        replayed=replayed,
    )


async def load_targets(
    conn: asyncpg.Connection, transfers: dict[int, Transfer]
) -> dict[int, Target]:
    """Read, under the account locks, whether each hold is resolved and how much is reversed."""
    rows = await conn.fetch(TARGET_RESOLUTION, list(transfers))
    return {
        r["id"]: Target(
            transfers[r["id"]], resolved=r["resolved"], reversed_minor=r["reversed_minor"]
        )
        for r in rows
    }


async def load_outcomes(
    conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], asyncpg.Record]:
    rows = await conn.fetch(LOAD_OUTCOMES, [k[0] for k in keys], [k[1] for k in keys])
    return {(r["client_id"], r["key"]): r for r in rows}


class KeysTaken(Exception):
    """Another transaction stored an outcome for one of the batch's keys first: nothing of the
    batch was written."""


async def prepare_batch_session(
    conn: asyncpg.Connection, side_statements: Mapping[str, str] | None = None
) -> None:
    """Make a connection ready for batches: the session settings, and the write statement (and
    the side statements, see SideRow) prepared by name. A connection the engine had before,
    given back to the pool and taken again, has lost its settings (the pool's reset) but kept
    its prepared statements."""
    await conn.execute(BATCH_SESSION)
    for name, sql in {WRITE_BATCH_NAME: WRITE_BATCH, **(side_statements or {})}.items():
        with contextlib.suppress(asyncpg.DuplicatePreparedStatementError):
            await conn.execute(f"PREPARE {name} AS {sql}")


async def write_batch_and_commit(
    conn: asyncpg.Connection,
    transfers: list[Transfer],
    accounts: Iterable[AccountState],
    outcomes: list[tuple[str, str, bytes, int | None, dict[str, Any] | None]],
    now: datetime,
    side_rows: Sequence[SideRow] = (),
) -> None:
    """Write the batch, and its commands' side rows, and commit it, in one round trip;
    KeysTaken (the transaction is left for the caller to roll back) if another transaction
    stored one of its keys first."""
    entries = [(t.id, e) for t in transfers for e in t.entries]
    changed = [a for a in accounts if a.changed]
    literals = _literals(
        [t.id for t in transfers],
        [t.kind.value for t in transfers],
        [t.code for t in transfers],
        [t.pending_id for t in transfers],
        [t.reverses_id for t in transfers],
        [t.amount_minor for t in transfers],
        [t.currency for t in transfers],
        [t.expires_at for t in transfers],
        [t.metadata for t in transfers],
    )
    literals.append(now.isoformat())
    literals += _literals(
        [e.account_id for _, e in entries],
        [e.account_seq for _, e in entries],
        [tid for tid, _ in entries],
        [e.amount_minor for _, e in entries],
        [e.currency for _, e in entries],
        [e.pending for _, e in entries],
        [e.balance_after_minor for _, e in entries],
        [a.id for a in changed],
        [a.delta_posted for a in changed],
        [a.delta_pending_debits for a in changed],
        [a.delta_pending_credits for a in changed],
        [a.delta_version for a in changed],
        [o[0] for o in outcomes],
        [o[1] for o in outcomes],
        [o[2] for o in outcomes],
        [o[3] for o in outcomes],
        [o[4] for o in outcomes],
    )
    statements = [f"EXECUTE {WRITE_BATCH_NAME}({','.join(map(_quoted, literals))})"]
    by_name: dict[str, list[tuple[Any, ...]]] = {}
    for name, values in side_rows:
        by_name.setdefault(name, []).append(values)
    for name, rows in by_name.items():
        columns = _literals(*(list(column) for column in zip(*rows, strict=True)))
        statements.append(f"EXECUTE {name}({','.join(map(_quoted, columns))})")
    try:
        await conn.execute("; ".join(statements) + "; COMMIT")
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name == "idempotency_keys_pkey":
            raise KeysTaken from None
        raise


class UnstorableText(ValueError):
    """A string of the batch holds a NUL, which no PostgreSQL text can: refused before it is
    sent, where PostgreSQL would refuse the statement (the API refuses it earlier still)."""


def _quoted(text: str) -> str:
    """A string constant (standard_conforming_strings is on: BATCH_SESSION)."""
    if "\x00" in text:
        raise UnstorableText("a PostgreSQL string cannot hold a NUL character")
    return "'" + text.replace("'", "''") + "'"


def _literals(*columns: list[Any]) -> list[str]:
    return [array_literal(column) for column in columns]


def array_literal(values: list[Any]) -> str:
    """A PostgreSQL array literal. Sent as text and cast in SQL: for the wide batch statement this
    is several times cheaper than asyncpg's per-element array encoding."""
    if not values:
        return "{}"
    first = type(values[0])
    if values[0] is None and values.count(None) == len(values):
        return "{" + ",".join(["NULL"] * len(values)) + "}"
    if first is int and None not in values:
        return "{" + ",".join(map(str, values)) + "}"
    if first is str and None not in values:
        # Plain words (codes, currencies, most keys) need no quoting: check them all at once.
        # (The count makes sure no value holds the separator itself.)
        joined = "\x1f".join(values)
        if (
            _PLAIN.fullmatch(joined)
            and joined.count("\x1f") == len(values) - 1
            and "NULL" not in joined.upper()
        ):
            return "{" + joined.replace("\x1f", ",") + "}"
    if first is bytes and None not in values:
        return "{" + ",".join(["\\\\x" + value.hex() for value in values]) + "}"
    return "{" + ",".join(map(_element, values)) + "}"


# Words that an array literal can hold unquoted: no separators, quotes, braces, backslashes or
# spaces, and no empty word (the \x1f separator may not start, end or repeat).
_PLAIN = re.compile(r"[A-Za-z0-9_.:@+-]+(?:\x1f[A-Za-z0-9_.:@+-]+)*")


def _element(value: Any) -> str:
    if value is None:
        return "NULL"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    if isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, str):
        text = value
    else:
        text = orjson.dumps(value).decode()
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
