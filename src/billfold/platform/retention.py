"""Purging rows past their retention period: in batches, each a short transaction, safe with
several processes doing it at once (each batch takes the rows no other is deleting: SKIP
LOCKED), until a batch comes back short."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from prometheus_client import Counter

from billfold.platform.tasks import raise_if_cancelling

log = logging.getLogger(__name__)

MAX_BATCHES = 10_000  # a bound on one round: 50 million rows at the default batch

ROWS_PURGED = Counter(
    "billfold_rows_purged", "Rows purged past their retention, by table.", ["table"]
)


async def purge(pool: asyncpg.Pool, table: str, statement: str, *args: object, batch: int) -> int:
    """Run `statement` (a DELETE of at most $1 rows, its other parameters `args`) until it
    deletes fewer than `batch` rows; how many it deleted in all."""
    total = 0
    for _ in range(MAX_BATCHES):
        status = await pool.execute(statement, batch, *args)
        count = int(status.split()[-1])
        total += count
        ROWS_PURGED.labels(table).inc(count)
        if count < batch:
            break
    if total:
        log.info("rows purged", extra={"table": table, "rows": total})
    return total


async def keep_purging(every_s: float, *rounds: Callable[[], Awaitable[int]]) -> None:
    """Run each purge round now and then every `every_s` seconds, for as long as the process
    serves; a failed round is logged and tried again next time."""
    while True:
        for round_ in rounds:
            try:
                await round_()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                raise_if_cancelling()
                log.warning("purge failed: %s", error)
        await asyncio.sleep(every_s)
