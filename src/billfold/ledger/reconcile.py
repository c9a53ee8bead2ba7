"""Reconciliation: recompute the ledger from its entries and compare with what it stores.

Checks, each over the whole ledger:
- every transfer's entries sum to zero per currency, every non-void transfer has entries and
  every entry belongs to a transfer;
- total debits equal total credits, per currency;
- each account's posted balance equals the sum of its posted entries, its version equals its
  entry count, its entries are numbered 1..n without gaps, and each entry's running balance
  equals the previous one plus its amount;
- each account's pending debits and credits equal the legs of its unresolved holds.

The work is split into id ranges so that it runs on several connections at once and reports its
progress as it goes.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from billfold.config import Settings

CHUNKS = 64
MAX_EXAMPLES = 20
# A run's differences kept with its outcome (reconcile_runs.problems holds at most 200).
MAX_STORED_PROBLEMS = 200
MoreChecks = Callable[[asyncpg.Pool], Awaitable[list[str]]]

TRANSFER_CHUNK = """
WITH sums AS (
    SELECT transfer_id, currency, sum(amount_minor) AS total,
           sum(-amount_minor) FILTER (WHERE amount_minor < 0) AS debits,
           sum(amount_minor) FILTER (WHERE amount_minor > 0) AS credits
      FROM entries WHERE transfer_id >= $1 AND transfer_id < $2
     GROUP BY transfer_id, currency
), per_transfer AS (
    SELECT transfer_id, bool_or(total <> 0) AS unbalanced FROM sums GROUP BY transfer_id
)
SELECT
    (SELECT coalesce(jsonb_agg(jsonb_build_array(currency, debits, credits)), '[]'::jsonb)
       FROM (SELECT currency, sum(coalesce(debits, 0))::bigint AS debits,
                    sum(coalesce(credits, 0))::bigint AS credits
               FROM sums GROUP BY currency) c) AS totals,
    (SELECT coalesce(array_agg(transfer_id), '{}') FROM
        (SELECT transfer_id FROM per_transfer WHERE unbalanced LIMIT 20) u) AS unbalanced,
    (SELECT coalesce(array_agg(id), '{}') FROM
        (SELECT t.id FROM transfers t LEFT JOIN per_transfer p ON p.transfer_id = t.id
          WHERE t.id >= $1 AND t.id < $2 AND t.kind <> 'void' AND p.transfer_id IS NULL
          LIMIT 20) m) AS without_entries,
    (SELECT coalesce(array_agg(transfer_id), '{}') FROM
        (SELECT p.transfer_id FROM per_transfer p LEFT JOIN transfers t ON t.id = p.transfer_id
          WHERE t.id IS NULL LIMIT 20) o) AS orphans,
    (SELECT count(*) FROM transfers WHERE id >= $1 AND id < $2) AS transfers,
    (SELECT coalesce(sum(1), 0) FROM sums) AS groups
"""

# An account whose oldest months were archived (ledger.archive) starts from the position
# carried forward in ledger_archived: its first entry here is the next place, its running
# balance goes on from the archived one, and its balance and version count what was archived.
ACCOUNT_CHUNK = """
WITH e AS (
    SELECT account_id, account_seq, amount_minor, pending, balance_after_minor,
           lag(balance_after_minor) OVER w AS previous_balance,
           lag(account_seq) OVER w AS previous_seq
      FROM entries WHERE account_id >= $1 AND account_id < $2
    WINDOW w AS (PARTITION BY account_id ORDER BY account_seq)
), per_account AS (
    SELECT account_id,
           coalesce(sum(amount_minor) FILTER (WHERE NOT pending), 0) AS posted,
           count(*) AS entries,
           count(*) FILTER (WHERE previous_seq IS NOT NULL
                            AND account_seq <> previous_seq + 1) AS gaps,
           count(*) FILTER (WHERE previous_seq IS NOT NULL
                            AND balance_after_minor <> previous_balance
                            + CASE WHEN pending THEN 0 ELSE amount_minor END) AS broken,
           min(account_seq) AS first_seq,
           min(balance_after_minor - CASE WHEN pending THEN 0 ELSE amount_minor END)
               FILTER (WHERE previous_seq IS NULL) AS opening
      FROM e GROUP BY account_id
), checked AS (
    SELECT a.id, a.posted_minor, a.version,
           coalesce(x.balance_minor, 0) + coalesce(p.posted, 0) AS entries_posted,
           coalesce(x.seq, 0) + coalesce(p.entries, 0) AS entries,
           coalesce(p.gaps, 0) + CASE WHEN p.first_seq <> coalesce(x.seq, 0) + 1 THEN 1 ELSE 0 END
               AS gaps,
           coalesce(p.broken, 0) + CASE WHEN p.opening <> coalesce(x.balance_minor, 0) THEN 1
                                        ELSE 0 END AS broken
      FROM accounts a
      LEFT JOIN per_account p ON p.account_id = a.id
      LEFT JOIN ledger_archived x ON x.account_id = a.id
     WHERE a.id >= $1 AND a.id < $2
)
SELECT c.*, (SELECT count(*) FROM entries WHERE account_id >= $1 AND account_id < $2) AS scanned
  FROM checked c
 WHERE c.posted_minor <> c.entries_posted OR c.version <> c.entries OR c.gaps > 0 OR c.broken > 0
"""

ENTRY_COUNT = "SELECT count(*) FROM entries WHERE account_id >= $1 AND account_id < $2"

PENDING = """
WITH open_legs AS (
    SELECT e.account_id,
           sum(-e.amount_minor) FILTER (WHERE e.amount_minor < 0) AS debits,
           sum(e.amount_minor) FILTER (WHERE e.amount_minor > 0) AS credits
      FROM transfers h JOIN entries e ON e.transfer_id = h.id AND e.created_at = h.created_at
     WHERE h.kind = 'hold'
       AND NOT EXISTS (SELECT 1 FROM hold_resolutions r WHERE r.hold_id = h.id)
     GROUP BY e.account_id
)
SELECT a.id, a.pending_debits_minor, a.pending_credits_minor,
       coalesce(o.debits, 0) AS open_debits, coalesce(o.credits, 0) AS open_credits
  FROM accounts a LEFT JOIN open_legs o ON o.account_id = a.id
 WHERE a.pending_debits_minor <> coalesce(o.debits, 0)
    OR a.pending_credits_minor <> coalesce(o.credits, 0)
 LIMIT 20
"""


@dataclass
class Report:
    transfers: int = 0
    entries: int = 0
    accounts: int = 0
    totals: dict[str, list[int]] = field(default_factory=dict)  # currency -> [debits, credits]
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_EXAMPLES * 5:
            self.problems.append(text)

    def render(self) -> str:
        lines = [
            f"reconciled {self.transfers} transfers, {self.entries} entries, "
            f"{self.accounts} accounts in {self.seconds:.1f}s",
        ]
        for currency, (debits, credits) in sorted(self.totals.items()):
            mark = "ok" if debits == credits else "MISMATCH"
            lines.append(f"  {currency}: debits {debits}, credits {credits}: {mark}")
        if self.ok:
            lines.append("no discrepancies")
        else:
            lines.append(f"{len(self.problems)} discrepancies:")
            lines.extend(f"  - {p}" for p in self.problems)
        return "\n".join(lines)


Progress = Callable[[str, int, int], None]


async def reconcile(
    pool: asyncpg.Pool, *, workers: int = 2, progress: Progress | None = None
) -> Report:
    """Check every ledger invariant; return a report listing each discrepancy found."""
    started = time.perf_counter()
    report = Report()
    async with pool.acquire() as conn:
        t_lo, t_hi = await conn.fetchrow(
            "SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM transfers"
        )
        a_lo, a_hi, report.accounts = await conn.fetchrow(
            "SELECT coalesce(min(id), 0), coalesce(max(id), 0), count(*) FROM accounts"
        )
    jobs = [("transfers", lo, hi) for lo, hi in _ranges(t_lo, t_hi)]
    jobs += [("accounts", lo, hi) for lo, hi in _ranges(a_lo, a_hi)]
    done = 0
    slots = asyncio.Semaphore(workers)

    async def run(kind: str, lo: int, hi: int) -> None:
        nonlocal done
        async with slots, pool.acquire() as conn, conn.transaction(readonly=True):
            await conn.execute("SET LOCAL work_mem = '256MB'")
            if kind == "transfers":
                await _check_transfers(conn, lo, hi, report)
            else:
                await _check_accounts(conn, lo, hi, report)
        done += 1
        if progress is not None:
            progress(kind, done, len(jobs))

    await asyncio.gather(*(run(*job) for job in jobs))
    async with pool.acquire() as conn:
        for row in await conn.fetch(PENDING):
            report.problem(
                f"account {row['id']}: pending debits/credits stored "
                f"{row['pending_debits_minor']}/{row['pending_credits_minor']}, open holds sum to "
                f"{row['open_debits']}/{row['open_credits']}"
            )
    for currency, (debits, credits) in report.totals.items():
        if debits != credits:
            report.problem(f"{currency}: total debits {debits} differ from total credits {credits}")
    report.seconds = time.perf_counter() - started
    return report


def _ranges(lo: int, hi: int) -> list[tuple[int, int]]:
    if hi < lo or (lo == 0 and hi == 0):
        return []
    step = max(1, (hi - lo + 1) // CHUNKS + 1)
    return [(start, min(start + step, hi + 1)) for start in range(lo, hi + 1, step)]


async def _check_transfers(conn: asyncpg.Connection, lo: int, hi: int, report: Report) -> None:
    row = await conn.fetchrow(TRANSFER_CHUNK, lo, hi)
    report.transfers += row["transfers"]
    for currency, debits, credits in row["totals"]:
        total = report.totals.setdefault(currency, [0, 0])
        total[0] += debits
        total[1] += credits
    for transfer_id in row["unbalanced"]:
        report.problem(f"transfer {transfer_id}: entries do not sum to zero")
    for transfer_id in row["without_entries"]:
        report.problem(f"transfer {transfer_id}: has no entries")
    for transfer_id in row["orphans"]:
        report.problem(f"entries name transfer {transfer_id}, which does not exist")


async def _check_accounts(conn: asyncpg.Connection, lo: int, hi: int, report: Report) -> None:
    rows = await conn.fetch(ACCOUNT_CHUNK, lo, hi)
    # Awaited before the += so that concurrent chunks cannot lose each other's counts.
    scanned = rows[0]["scanned"] if rows else await conn.fetchval(ENTRY_COUNT, lo, hi)
    report.entries += scanned
    for r in rows:
        if r["posted_minor"] != r["entries_posted"]:
            report.problem(
                f"account {r['id']}: posted balance {r['posted_minor']}, "
                f"its entries sum to {r['entries_posted']}"
            )
        if r["version"] != r["entries"]:
            report.problem(f"account {r['id']}: version {r['version']}, {r['entries']} entries")
        if r["gaps"]:
            report.problem(f"account {r['id']}: {r['gaps']} gaps in its entry numbering")
        if r["broken"]:
            report.problem(f"account {r['id']}: {r['broken']} entries break the running balance")


async def reconcile_and_record(
    pool: asyncpg.Pool,
    source: str,
    *,
    workers: int = 2,
    more_checks: MoreChecks | None = None,
    progress: Progress | None = None,
) -> tuple[Report, list[str]]:
    """`reconcile`, then `more_checks` (the other contexts' checks against the ledger), and the
    outcome stored as a row of reconcile_runs (`source`: cli or console), so that operators see
    the last one (`last_run`)."""
    started_at = datetime.now(UTC)
    report = await reconcile(pool, workers=workers, progress=progress)
    more = await more_checks(pool) if more_checks is not None else []
    problems = (report.problems + more)[:MAX_STORED_PROBLEMS]
    await pool.execute(
        """INSERT INTO reconcile_runs (started_at, seconds, transfers, entries, accounts,
               totals, problems, balanced, source)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        started_at,
        report.seconds,
        report.transfers,
        report.entries,
        report.accounts,
        report.totals,
        problems,
        not problems,
        source,
    )
    return report, more


async def last_run(pool: asyncpg.Pool) -> dict[str, Any] | None:
    """The outcome of the latest reconciliation (None before the first): when it started, how
    long it took, what it checked, whether the ledger balanced and each difference found."""
    row = await pool.fetchrow(
        """SELECT started_at, seconds, transfers, entries, accounts, totals, problems, balanced,
                  source
             FROM reconcile_runs ORDER BY id DESC LIMIT 1"""
    )
    if row is None:
        return None
    return {
        **dict(row),
        "totals": [
            {"currency": currency, "debits_minor": debits, "credits_minor": credits}
            for currency, (debits, credits) in sorted(row["totals"].items())
        ],
        "problems": list(row["problems"]),
    }


def run_cli(
    settings: Settings,
    *,
    workers: int = 2,
    more_checks: MoreChecks | None = None,
) -> None:
    """`billfold reconcile`: print the report, progress on stderr; exit 1 on any discrepancy.
    `more_checks` are the other contexts' checks against the ledger, one line per problem.
    The outcome is stored (reconcile_runs) for the operator console."""
    report, more = asyncio.run(_reconcile_configured(settings, workers, more_checks))
    print(report.render())
    if more_checks is not None:
        print("\n".join(more) if more else "funding movements agree with the ledger")
    if not report.ok or more:
        raise SystemExit(1)


async def _reconcile_configured(
    settings: Settings,
    workers: int,
    more_checks: MoreChecks | None,
) -> tuple[Report, list[str]]:
    from billfold.platform.db import create_pool
    from billfold.platform.embedded import ensure_database

    dsn = await asyncio.to_thread(ensure_database, settings)
    sized = settings.model_copy(update={"db_pool_min": 1, "db_pool_max": workers + 1})
    pool = await create_pool(dsn, sized)
    try:
        return await reconcile_and_record(
            pool, "cli", workers=workers, more_checks=more_checks, progress=_print_progress
        )
    finally:
        await pool.close()


def _print_progress(kind: str, done: int, total: int) -> None:
    if done == total or done % max(1, total // 20) == 0:
        print(
            f"reconcile: {done}/{total} ranges checked ({100 * done // total}%)",
            file=sys.stderr,
            flush=True,
        )
