"""Re-wrapping sealed values under the active key (`billfold keys rotate`), for any context.

Each context that seals values (platform.crypto) lists its columns as SealedColumn; the
command re-wraps all of them. Rows are re-wrapped in small batches, each row only if it still
has the key it was read with, so a row written meanwhile is never overwritten; the value's own
ciphertext does not change, only its data key's wrapping.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from billfold.platform.crypto import KeyRing, Sealed

BATCH = 500


@dataclass
class Rotation:
    rewrapped: int = 0
    remaining: int = 0


@dataclass(frozen=True)
class SealedColumn:
    """A sealed value in a table keyed by a uuid `id`: its ciphertext, its wrapped data key,
    the name of the key that wraps it (NULL when the value is absent), and what it is bound to."""

    table: str
    ciphertext: str
    wrapped_key: str
    context: Callable[[uuid.UUID], str]
    key_id: str = "key_id"


async def rotate(
    pool: asyncpg.Pool,
    keys: KeyRing,
    columns: Sequence[SealedColumn],
    progress: Callable[[int, int], None] | None = None,
) -> Rotation:
    """Re-wrap every value of `columns` not under the active key; how many, and how many are
    left under other keys (written meanwhile under an old key, if any process still has it
    first)."""
    total = sum([await _remaining(pool, keys, column) for column in columns])
    result = Rotation()
    for column in columns:
        await _rotate(pool, keys, column, result, total, progress)
    result.remaining = sum([await _remaining(pool, keys, column) for column in columns])
    return result


async def _remaining(pool: asyncpg.Pool, keys: KeyRing, column: SealedColumn) -> int:
    count: int = await pool.fetchval(
        f"SELECT count(*) FROM {column.table} WHERE {column.key_id} <> $1", keys.active
    )
    return count


async def _rotate(
    pool: asyncpg.Pool,
    keys: KeyRing,
    column: SealedColumn,
    result: Rotation,
    total: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    after = None
    while True:
        rows = await pool.fetch(
            f"""SELECT id, {column.ciphertext} AS enc, {column.wrapped_key} AS dek,
                       {column.key_id} AS key_id
                  FROM {column.table}
                 WHERE {column.key_id} <> $1 AND ($2::uuid IS NULL OR id > $2)
                 ORDER BY id LIMIT $3""",
            keys.active,
            after,
            BATCH,
        )
        if not rows:
            return
        after = rows[-1]["id"]
        updates = []
        for row in rows:
            sealed = Sealed(row["enc"], row["dek"], row["key_id"])
            fresh = keys.rewrap(sealed, column.context(row["id"]))
            updates.append((row["id"], row["key_id"], fresh.wrapped_key, fresh.key_id))
        changed = await pool.fetchval(
            f"""WITH done AS (
                   UPDATE {column.table} t
                      SET {column.wrapped_key} = u.dek, {column.key_id} = u.new_key
                     FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[])
                          AS u(id, old_key, dek, new_key)
                    WHERE t.id = u.id AND t.{column.key_id} = u.old_key
                   RETURNING 1)
               SELECT count(*) FROM done""",
            *map(list, zip(*updates, strict=True)),
        )
        result.rewrapped += changed
        if progress is not None:
            progress(result.rewrapped, total)
