"""Process-wide tuning applied once at start-up, by the server's workers and the benchmarks, and
what the background loops share."""

from __future__ import annotations

import asyncio
import gc

# Collect the youngest generation after 100,000 new objects instead of 700. A busy engine keeps
# tens of thousands of live futures, commands and rows; with the default, full collections ran
# often enough to add tens of milliseconds to the slowest transfers (p99 58 ms -> 44 ms in
# `bench ledger --submitters 200`, hot account).
GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc() -> None:
    """Freeze what start-up allocated (it lives as long as the process) and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def stop_if_cancelled(error: BaseException) -> None:
    """Re-raise the cancellation a library turned into `error`. A background loop that retries
    on errors calls this first: cancelled mid-query, asyncpg's rollback on the way out raises
    InterfaceError ("another operation is in progress") in place of CancelledError, and a loop
    that caught it would retry forever and never stop (a shutdown that hung)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from error
