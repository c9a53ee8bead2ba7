"""CPU seconds spent by the processes of a benchmark on this machine, read from /proc.

The benchmarks divide them by the work done: what a transfer costs the app, PostgreSQL and
Redis, which holds steadier than a rate on a shared machine. Servers running elsewhere (or a
system without /proc) read as None.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

# The database and cache servers, by the name their processes run under.
SERVERS = {"postgresql": "postgres", "redis": "redis-server"}


def servers_cpu() -> dict[str, float | None]:
    return {name: processes_cpu(command) for name, command in SERVERS.items()}


def processes_cpu(command: str | None = None, *, tree: int | None = None) -> float | None:
    """CPU seconds (user and system) of the live processes named `command`, or of process
    `tree` and its children; None if there are none (or no /proc)."""
    found, ticks = False, 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # a process that ended meanwhile
        name, _, rest = text.partition(" (")[2].rpartition(")")
        fields = rest.split()
        if tree is not None:
            pid = int(stat.parent.name)
            if pid != tree and int(fields[1]) != tree:
                continue
        elif name != command:
            continue
        found, ticks = True, ticks + int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK") if found else None


def backends_cpu(pids: Iterable[int]) -> float | None:
    """CPU seconds (user and system) of the PostgreSQL backends `pids` that still run here; None
    if none does. On a shared server, a benchmark's own database's backends are its share: the
    others' tests count in `servers_cpu`."""
    found, ticks = False, 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue  # ended, or the server is not on this machine
        fields = text.rpartition(")")[2].split()
        found, ticks = True, ticks + int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK") if found else None


def per_unit_us(
    before: dict[str, float | None], after: dict[str, float | None], units: int
) -> dict[str, int | None]:
    """Microseconds of CPU per unit of work between two readings, for each process group."""
    return {
        name: None
        if before[name] is None or after.get(name) is None or not units
        else round((after[name] - before[name]) / units * 1e6)  # type: ignore[operator]
        for name in before
    }
