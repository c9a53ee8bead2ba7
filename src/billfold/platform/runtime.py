"""Process-wide tuning applied once at start-up, by the server's workers and the benchmarks."""

from __future__ import annotations

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
