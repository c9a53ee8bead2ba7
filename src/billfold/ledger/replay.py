"""Answers to a repeated idempotency key: a command whose key is in flight in this process waits
for the first one's outcome; one whose key another transaction stored is answered from what was
stored. Either way, a key reused for a different request is refused (IdempotencyKeyReused).
"""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg

from billfold.ledger import store
from billfold.ledger.errors import IdempotencyKeyReused, LedgerBusy, LedgerError, error_from_stored
from billfold.ledger.model import Command, Transfer


@dataclasses.dataclass(slots=True)
class Pending:
    """A command submitted and the future its caller waits on."""

    command: Command
    future: asyncio.Future[Transfer]


async def answer_from_storage(pool: asyncpg.Pool, batch: list[Pending]) -> list[Pending]:
    """Answer the commands whose keys are already stored; return the ones still to run."""
    keys = [(p.command.client_id, p.command.key) for p in batch]
    async with pool.acquire() as conn:
        stored = await store.load_outcomes(conn, keys)
        ids = [r["transfer_id"] for r in stored.values() if r["transfer_id"] is not None]
        transfers = await store.load_transfers(conn, ids) if ids else {}
    todo = []
    for pending, key in zip(batch, keys, strict=True):
        row = stored.get(key)
        if row is None:
            todo.append(pending)
        else:
            _settle_replay(pending, row, transfers)
    return todo


def _settle_replay(pending: Pending, row: asyncpg.Record, transfers: dict[int, Transfer]) -> None:
    command = pending.command
    if pending.future.done():
        return  # its caller gave up (cancelled)
    if bytes(row["request_hash"]) != command.request_hash:
        pending.future.set_exception(_reused(command))
    elif row["transfer_id"] is not None:
        pending.future.set_result(dataclasses.replace(transfers[row["transfer_id"]], replayed=True))
    else:
        pending.future.set_exception(error_from_stored(row["error"]))


async def answer_duplicate(command: Command, first: Pending) -> Transfer:
    """A second request with a key already in flight gets the first request's outcome."""
    try:
        transfer = await asyncio.shield(first.future)
    except LedgerBusy:
        raise
    except LedgerError as error:
        if first.command.request_hash != command.request_hash:
            raise _reused(command) from None
        raise error_from_stored(error.to_dict()) from None
    if first.command.request_hash != command.request_hash:
        raise _reused(command)
    return dataclasses.replace(transfer, replayed=True)


def _reused(command: Command) -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        f"idempotency key '{command.key}' was first used for a different request",
        idempotency_key=command.key,
    )
