"""The ledger's commands: transfer, move, hold, post, void, reverse, each a call that returns the
committed transfer or raises its LedgerError, and the reads of what a request stored. They run
through the group commit underneath (ledger.batching): one transaction per batch of commands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from billfold.ledger import store
from billfold.ledger.batching import GroupCommit
from billfold.ledger.errors import InvalidTransfer
from billfold.ledger.model import Command, Kind, Leg, SideRow, Transfer
from billfold.platform import db, leases

EXPIRY_BATCH = 500
SYSTEM_CLIENT = "system"


class Ledger(GroupCommit):
    """Double-entry money movement: see ledger.batching for how commands are run."""

    # The commands, one method each. Each returns the committed transfer or raises LedgerError.

    async def transfer(
        self,
        client_id: str,
        key: str,
        legs: Sequence[Leg],
        *,
        code: str,
        metadata: dict[str, Any] | None = None,
        rows: Sequence[SideRow] = (),
    ) -> Transfer:
        """Move money now along balanced legs. `rows`: see SideRow."""
        return await self.submit(
            Command(
                Kind.TRANSFER,
                client_id,
                key,
                code,
                tuple(legs),
                metadata=metadata,
                rows=tuple(rows),
            )
        )

    async def move(
        self,
        client_id: str,
        key: str,
        *,
        debit_account_id: int,
        credit_account_id: int,
        amount_minor: int,
        currency: str,
        code: str,
        metadata: dict[str, Any] | None = None,
        rows: Sequence[SideRow] = (),
    ) -> Transfer:
        """Move `amount_minor` from one account to another: the two-leg transfer. `rows`: see
        SideRow."""
        legs = _two_legs(debit_account_id, credit_account_id, amount_minor, currency)
        return await self.submit(
            Command(Kind.TRANSFER, client_id, key, code, legs, metadata=metadata, rows=tuple(rows))
        )

    async def hold(
        self,
        client_id: str,
        key: str,
        *,
        debit_account_id: int,
        credit_account_id: int,
        amount_minor: int,
        currency: str,
        code: str,
        expires_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Transfer:
        """Reserve money (pending) until it is posted or voided, or until it expires."""
        legs = _two_legs(debit_account_id, credit_account_id, amount_minor, currency)
        return await self.submit(
            Command(Kind.HOLD, client_id, key, code, legs, expires_at=expires_at, metadata=metadata)
        )

    async def hold_legs(
        self,
        client_id: str,
        key: str,
        legs: Sequence[Leg],
        *,
        code: str,
        expires_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
        rows: Sequence[SideRow] = (),
    ) -> Transfer:
        """Reserve money along balanced legs (a payment with its fee: three), until the hold is
        posted in full or voided, or until it expires. `rows`: see SideRow."""
        return await self.submit(
            Command(
                Kind.HOLD,
                client_id,
                key,
                code,
                tuple(legs),
                expires_at=expires_at,
                metadata=metadata,
                rows=tuple(rows),
            )
        )

    async def post(
        self,
        client_id: str,
        key: str,
        hold_id: int,
        *,
        amount_minor: int | None = None,
        code: str = "post",
        rows: Sequence[SideRow] = (),
    ) -> Transfer:
        """Post a hold, in full or (for a two-leg hold) in part; the rest is released. `rows`:
        see SideRow."""
        return await self.submit(
            Command(
                Kind.POST,
                client_id,
                key,
                code,
                target_id=hold_id,
                amount_minor=amount_minor,
                rows=tuple(rows),
            )
        )

    async def void(
        self,
        client_id: str,
        key: str,
        hold_id: int,
        *,
        code: str = "void",
        rows: Sequence[SideRow] = (),
    ) -> Transfer:
        """Release a hold without moving money. `rows`: see SideRow."""
        return await self.submit(
            Command(Kind.VOID, client_id, key, code, target_id=hold_id, rows=tuple(rows))
        )

    async def reverse(
        self,
        client_id: str,
        key: str,
        transfer_id: int,
        *,
        amount_minor: int | None = None,
        code: str = "reversal",
        metadata: dict[str, Any] | None = None,
    ) -> Transfer:
        """Move money back along a transfer, in full or in part, never beyond the original."""
        return await self.submit(
            Command(
                Kind.REVERSAL,
                client_id,
                key,
                code,
                target_id=transfer_id,
                amount_minor=amount_minor,
                metadata=metadata,
            )
        )

    async def void_expired_holds(self, limit: int = EXPIRY_BATCH) -> int:
        """Void up to `limit` holds whose expiry has passed, releasing their money; return how
        many. One node of the fleet sweeps at a time (platform.leases): another node's sweep
        meanwhile does nothing. Each void's idempotency key names the hold as well, so a hold
        is voided once even by a sweep that outlived its lease (its connection lost)."""
        async with leases.lease(self._pool, leases.HOLD_SWEEP) as held:
            if not held:
                return 0
            ids = await db.fetch(self._pool, store.EXPIRED_HOLDS, limit)
            voids = [
                self.void(SYSTEM_CLIENT, f"expire:{row['id']}", row["id"], code="hold_expired")
                for row in ids
            ]
            outcomes = await asyncio.gather(*voids, return_exceptions=True)
        return sum(isinstance(o, Transfer) and not o.replayed for o in outcomes)

    async def has_outcome(self, client_id: str, key: str) -> bool:
        """Whether a request with this key has finished (its outcome is stored)."""
        row = await db.fetchrow(self._pool, store.HAS_OUTCOME, client_id, key)
        return row is not None

    async def stored_transfer(self, client_id: str, key: str) -> Transfer | None:
        """The transfer a finished request with this key made (None: none, or it failed)."""
        transfer_id = await self._pool.fetchval(
            "SELECT transfer_id FROM idempotency_keys WHERE client_id = $1 AND key = $2",
            client_id,
            key,
        )
        return await self.get_transfer(transfer_id) if transfer_id is not None else None

    async def get_transfer(self, transfer_id: int) -> Transfer | None:
        async with self._pool.acquire() as conn:
            found = await store.load_transfers(conn, [transfer_id])
        return found.get(transfer_id)


def _two_legs(debit_id: int, credit_id: int, amount: int, currency: str) -> tuple[Leg, Leg]:
    if amount <= 0:
        raise InvalidTransfer(f"amount {amount} must be positive", field="amount_minor")
    return (Leg(debit_id, -amount, currency), Leg(credit_id, amount, currency))
