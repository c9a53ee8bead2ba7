"""`billfold keys rotate`: re-wrap every sealed value under the active key, while serving.

Run it after putting a new key first in BILLFOLD_DATA_KEYS (keeping the old one after it) on
every process. Rows are re-wrapped in small batches, each row only if it still has the key it
was read with, so a row written meanwhile is never overwritten; the value's own ciphertext does
not change. When it reports nothing left, the old key can be removed. Sealed values: bank
account numbers and card tokens.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from billfold.funding import bank_accounts, cards
from billfold.funding.service import Funding
from billfold.platform.crypto import Sealed

BATCH = 500


@dataclass
class Rotation:
    rewrapped: int = 0
    remaining: int = 0


@dataclass(frozen=True)
class _SealedColumn:
    table: str
    ciphertext: str
    wrapped_key: str
    context: Callable[[uuid.UUID], str]


SEALED = (
    _SealedColumn(
        "bank_accounts", "account_number_enc", "account_number_dek", bank_accounts.sealed_context
    ),
    _SealedColumn("cards", "token_enc", "token_dek", cards.sealed_context),
)


async def rotate(funding: Funding, progress: Callable[[int, int], None] | None = None) -> Rotation:
    total = sum([await _remaining(funding, column) for column in SEALED])
    result = Rotation()
    for column in SEALED:
        await _rotate(funding, column, result, total, progress)
    result.remaining = sum([await _remaining(funding, column) for column in SEALED])
    return result


async def _remaining(funding: Funding, column: _SealedColumn) -> int:
    count: int = await funding.pool.fetchval(
        f"SELECT count(*) FROM {column.table} WHERE key_id <> $1", funding.keys.active
    )
    return count


async def _rotate(
    funding: Funding,
    column: _SealedColumn,
    result: Rotation,
    total: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    keys = funding.keys
    after = None
    while True:
        rows = await funding.pool.fetch(
            f"""SELECT id, {column.ciphertext} AS enc, {column.wrapped_key} AS dek, key_id
                  FROM {column.table}
                 WHERE key_id <> $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3""",
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
        changed = await funding.pool.fetchval(
            f"""WITH done AS (
                   UPDATE {column.table} t SET {column.wrapped_key} = u.dek, key_id = u.new_key
                     FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[])
                          AS u(id, old_key, dek, new_key)
                    WHERE t.id = u.id AND t.key_id = u.old_key
                   RETURNING 1)
               SELECT count(*) FROM done""",
            *map(list, zip(*updates, strict=True)),
        )
        result.rewrapped += changed
        if progress is not None:
            progress(result.rewrapped, total)
