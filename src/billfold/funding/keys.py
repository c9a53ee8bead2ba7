"""`billfold keys rotate`: re-wrap every sealed value under the active key, while serving.

Run it after putting a new key first in BILLFOLD_DATA_KEYS (keeping the old one after it) on
every process. Rows are re-wrapped in small batches, each row only if it still has the key it
was read with, so a row written meanwhile is never overwritten; the value's own ciphertext does
not change. When it reports nothing left, the old key can be removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from billfold.funding.bank_accounts import sealed_context
from billfold.funding.service import Funding
from billfold.platform.crypto import Sealed

BATCH = 500


@dataclass
class Rotation:
    rewrapped: int = 0
    remaining: int = 0


async def rotate(funding: Funding, progress: Callable[[int, int], None] | None = None) -> Rotation:
    keys = funding.keys
    pool = funding.pool
    total = await pool.fetchval(
        "SELECT count(*) FROM bank_accounts WHERE key_id <> $1", keys.active
    )
    result = Rotation()
    after = None
    while True:
        rows = await pool.fetch(
            """SELECT id, account_number_enc, account_number_dek, key_id FROM bank_accounts
                WHERE key_id <> $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3""",
            keys.active,
            after,
            BATCH,
        )
        if not rows:
            break
        after = rows[-1]["id"]
        updates = []
        for row in rows:
            sealed = Sealed(row["account_number_enc"], row["account_number_dek"], row["key_id"])
            fresh = keys.rewrap(sealed, sealed_context(row["id"]))
            updates.append((row["id"], row["key_id"], fresh.wrapped_key, fresh.key_id))
        changed = await pool.fetchval(
            """WITH done AS (
                   UPDATE bank_accounts b SET account_number_dek = u.dek, key_id = u.new_key
                     FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[])
                          AS u(id, old_key, dek, new_key)
                    WHERE b.id = u.id AND b.key_id = u.old_key
                   RETURNING 1)
               SELECT count(*) FROM done""",
            *map(list, zip(*updates, strict=True)),
        )
        result.rewrapped += changed
        if progress is not None:
            progress(result.rewrapped, total)
    result.remaining = await pool.fetchval(
        "SELECT count(*) FROM bank_accounts WHERE key_id <> $1", keys.active
    )
    return result
