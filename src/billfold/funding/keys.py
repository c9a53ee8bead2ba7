"""`billfold keys rotate`: re-wrap every sealed value under the active key, while serving.

Run it after putting a new key first in BILLFOLD_DATA_KEYS (keeping the old one after it) on
every process. Rows are re-wrapped in small batches, each row only if it still has the key it
was read with, so a row written meanwhile is never overwritten; the value's own ciphertext does
not change. When it reports nothing left, the old key can be removed. Funding's sealed values: bank
account numbers and card tokens (SEALED); the command (billfold.cli) re-wraps every context's.
"""

from __future__ import annotations

from collections.abc import Callable

from billfold.funding import bank_accounts, cards
from billfold.funding.service import Funding
from billfold.platform.rewrap import Rotation, SealedColumn
from billfold.platform.rewrap import rotate as rewrap

SEALED = (
    SealedColumn(
        "bank_accounts", "account_number_enc", "account_number_dek", bank_accounts.sealed_context
    ),
    SealedColumn("cards", "token_enc", "token_dek", cards.sealed_context),
)


async def rotate(funding: Funding, progress: Callable[[int, int], None] | None = None) -> Rotation:
    """Re-wrap funding's sealed values (SEALED) under the active key."""
    return await rewrap(funding.pool, funding.keys, SEALED, progress)
