"""Monthly partitions of the tables that grow with traffic (migration 0034).

Every table the database partitions by range (`pg_partitioned_table`) is kept here: its month's
partitions are created `partitions_months_ahead` months ahead by a task in every process
(`keep_ensuring`), under an advisory lock, so that several nodes doing it at once create each one
once; a month with no partition yet still takes writes (its table's default partition holds them
until the month's partition is created, which moves them in). Old months are detached into the
`archive` schema (`billfold partitions detach --before YYYY-MM`), one at a time, to be dumped and
dropped; a table may name rows that must not leave with a month (the outbox's unpublished
events), and then that month stays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg
from prometheus_client import Counter

from billfold.platform.tasks import raise_if_cancelling

log = logging.getLogger(__name__)

# The advisory lock (one key) that serialises partition changes across the fleet.
LOCK_KEY = 0x0B0B_9A27
# How often each process checks that the months ahead have their partitions.
ENSURE_EVERY_S = 3600.0
# A partition change waits this long for the table's lock, then gives up until the next round
# rather than queue every writer behind it.
LOCK_TIMEOUT_MS = 5_000
MAX_MONTHS_AHEAD = 24

PARTITIONS_CREATED = Counter(
    "billfold_partitions_created", "Monthly partitions created ahead, by table.", ["table"]
)

LIST = """
SELECT parent.relname AS parent, child.relname AS name,
       pg_get_expr(child.relpartbound, child.oid) AS bound,
       child.reltuples::bigint AS rows_estimate,
       pg_total_relation_size(child.oid) AS bytes
  FROM pg_partitioned_table p
  JOIN pg_class parent ON parent.oid = p.partrelid
  JOIN pg_namespace ns ON ns.oid = parent.relnamespace AND ns.nspname = current_schema()
  JOIN pg_inherits i ON i.inhparent = parent.oid
  JOIN pg_class child ON child.oid = i.inhrelid
 WHERE p.partstrat = 'r'
 ORDER BY parent.relname, child.relname
"""
ENSURE = "SELECT partition_ensure($1::regclass, $2)"
PARENTS = """
SELECT parent.relname FROM pg_partitioned_table p
  JOIN pg_class parent ON parent.oid = p.partrelid
  JOIN pg_namespace ns ON ns.oid = parent.relnamespace AND ns.nspname = current_schema()
 WHERE p.partstrat = 'r' ORDER BY 1
"""


@dataclass(frozen=True)
class Partition:
    parent: str
    name: str
    # The first day of its month; None for the default partition.
    month: date | None
    rows_estimate: int
    bytes: int


# What a table does before one of its months leaves, in the detaching transaction, under the
# partitions' lock: a reason to keep the month, or None once it has done what must come first.
BeforeDetach = Callable[[asyncpg.Connection, Partition], Awaitable[str | None]]


def month_of(name: str) -> date | None:
    """The month a partition's name (`<table>_pYYYY_MM`) stands for; None for any other."""
    head, _, tail = name.rpartition("_p")
    year, _, month = tail.partition("_")
    if not head or not (year.isdigit() and month.isdigit()):
        return None
    return date(int(year), int(month), 1)


def add_months(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def parse_month(text: str) -> date:
    """`YYYY-MM` as the first day of that month; ValueError naming the text otherwise."""
    try:
        return datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise ValueError(f"month '{text}' is not YYYY-MM") from None


async def list_partitions(conn: asyncpg.Connection) -> list[Partition]:
    """Every partition of every range-partitioned table, by table and month."""
    rows = await conn.fetch(LIST)
    return [
        Partition(
            r["parent"], r["name"], month_of(r["name"]), max(r["rows_estimate"], 0), r["bytes"]
        )
        for r in rows
    ]


async def ensure(
    pool: asyncpg.Pool, months_ahead: int, *, today: date | None = None
) -> dict[str, list[str]]:
    """Create, for every partitioned table, the partitions of this month and the next
    `months_ahead` that are missing; the names created, by table. Serialised across the fleet by
    an advisory lock held for the transaction: a second node waits, then finds them made."""
    if not 0 <= months_ahead <= MAX_MONTHS_AHEAD:
        raise ValueError(f"months ahead {months_ahead} is not within 0..{MAX_MONTHS_AHEAD}")
    first = (today or datetime.now(UTC).date()).replace(day=1)
    months = [add_months(first, n) for n in range(months_ahead + 1)]
    created: dict[str, list[str]] = {}
    async with pool.acquire() as conn:
        parents = [r[0] for r in await conn.fetch(PARENTS)]
        existing = {p.name for p in await list_partitions(conn)}
        for parent in parents:
            missing = [m for m in months if _name(parent, m) not in existing]
            if not missing:
                continue  # the common case: no lock, no DDL
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
                await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
                for month in missing:
                    made = await conn.fetchval(ENSURE, parent, month)
                    if made:
                        created.setdefault(parent, []).append(_name(parent, month))
                        PARTITIONS_CREATED.labels(parent).inc()
    for parent, names in created.items():
        log.info("partitions created", extra={"table": parent, "partitions": names})
    return created


async def detach(
    pool: asyncpg.Pool,
    before: date,
    guards: Mapping[str, str],
    progress: Callable[[str], None] = lambda line: None,
    hooks: Mapping[str, BeforeDetach] | None = None,
) -> tuple[list[str], list[str]]:
    """Detach every monthly partition whose month ends by `before` (its first day) into the
    `archive` schema, one at a time and oldest first, telling `progress` of each; the names
    detached, and those kept because rows its table's guard names (a condition:
    `guards[table]`) are still in them, because its table's hook (`hooks[table]`, run in the
    detaching transaction) gave a reason, or because the archive has one of that name already
    (a month made again after it was detached: drop or rename the archived one first). Only
    months that have ended go."""
    this_month = datetime.now(UTC).date().replace(day=1)
    if before > this_month:
        raise ValueError(f"month {before:%Y-%m} has not begun: only ended months are detached")
    async with pool.acquire() as conn:
        old = [
            p
            for p in await list_partitions(conn)
            if p.month is not None and add_months(p.month, 1) <= before
        ]
        detached: list[str] = []
        kept: list[str] = []
        for number, part in enumerate(old, 1):
            step = f"[{number}/{len(old)}] {part.name}"
            guard = guards.get(part.parent)
            held = f"SELECT EXISTS (SELECT FROM {part.name} WHERE {guard})"
            if guard and await conn.fetchval(held):
                kept.append(part.name)
                progress(f"{step}: kept, it still has rows where {guard}")
                continue
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"archive.{part.name}"):
                kept.append(part.name)
                progress(f"{step}: kept, archive.{part.name} exists already")
                continue
            reason = await _detach_one(conn, part, (hooks or {}).get(part.parent))
            if reason is not None:
                kept.append(part.name)
                progress(f"{step}: kept, {reason}")
                continue
            detached.append(part.name)
            size = f"~{part.rows_estimate:,} rows, {part.bytes / 2**20:,.1f} MiB"
            progress(f"{step}: detached into archive.{part.name} ({size})")
    return detached, kept


async def keep_ensuring(pool: asyncpg.Pool, months_ahead: int) -> None:
    """Create the months ahead's partitions now and then every ENSURE_EVERY_S, for as long as
    the process serves; a failed round (the table's lock not had in time) is logged, and the
    next one tries again."""
    while True:
        try:
            await ensure(pool, months_ahead)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise_if_cancelling()
            log.warning("partitions not ensured: %s", error)
        await asyncio.sleep(ENSURE_EVERY_S)


async def _detach_one(
    conn: asyncpg.Connection, part: Partition, hook: BeforeDetach | None
) -> str | None:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        if hook is not None and (reason := await hook(conn, part)) is not None:
            return reason
        await conn.execute(f"ALTER TABLE {part.parent} DETACH PARTITION {part.name}")
        await conn.execute(f"ALTER TABLE {part.name} SET SCHEMA archive")
    return None


def _name(parent: str, month: date) -> str:
    return f"{parent}_p{month:%Y_%m}"
