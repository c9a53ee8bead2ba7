"""`billfold bench reconcile`: time reconciliation of a ledger of N entries.

Building a ten-million-entry ledger through the engine would take longer than the benchmark, so
the ledger is generated in SQL instead, month by month over the last twelve into their
partitions (`monthly`): consistent transfers between system accounts, each entry with its
account sequence number and running balance, account balances set to match. The
benchmark then reconciles it, and must find no discrepancy.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Any

from billfold.config import Settings
from billfold.ledger.reconcile import reconcile
from billfold.platform.db import create_pool
from billfold.platform.migrate import apply_migrations
from billfold_bench import monthly
from billfold_bench.seed import scratch_database

ACCOUNTS = """
INSERT INTO accounts (kind, owner, currency, overdraft_limit_minor)
SELECT 'system', 'bench', 'USD', 1000000000000000 FROM generate_series(1, $1)
"""
# Each transfer moves money from one pseudo-random account to another ($3: the accounts).
LEGS = """
SELECT id AS transfer_id, created_at, 1 + (id * 7919) % $3 AS account_id,
       -amount_minor AS amount_minor
  FROM month
UNION ALL
SELECT id, created_at, 1 + (id * 7919 + 1 + id % ($3 - 1)) % $3, amount_minor FROM month
"""


async def run_reconcile_bench(
    settings: Settings, dsn: str, *, entries: int, accounts: int, workers: int
) -> dict[str, Any]:
    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    async with scratch_database(dsn) as database_url:
        sized = settings.model_copy(
            update={"db_pool_min": 1, "db_pool_max": workers + 1, "statement_timeout_ms": 0}
        )
        pool = await create_pool(database_url, sized)
        try:
            async with pool.acquire() as conn:
                await apply_migrations(conn)
                say(f"generating {entries:,} entries over {accounts:,} accounts ...")
                started = time.perf_counter()
                await conn.execute(ACCOUNTS, accounts)
                await monthly.generate(
                    conn,
                    transfers=entries // 2,
                    start=monthly.year_start_before(datetime.now(UTC)),
                    code="'p2p'",
                    metadata="NULL::jsonb",
                    legs=LEGS,
                    legs_args=(accounts,),
                )
                written = time.perf_counter() - started
                for table in ("accounts", "transfers", "entries"):
                    await conn.execute(f"VACUUM ANALYZE {table}")
                say(
                    f"generated in {written:.0f}s, vacuumed in "
                    f"{time.perf_counter() - started - written:.0f}s; reconciling ..."
                )
                generated = time.perf_counter() - started
            checking = time.perf_counter()

            # Where the time goes: the transfer ranges run first, then the account ranges.
            def progress(kind: str, done: int, total: int) -> None:
                if done % 16 == 0 or done == total:
                    say(f"  {done}/{total} ranges ({kind}) {time.perf_counter() - checking:.1f}s")

            report = await reconcile(
                pool,
                workers=workers,
                progress=progress,
            )
        finally:
            await pool.close()
    say(report.render())
    return {
        "benchmark": "reconcile",
        "entries": report.entries,
        "transfers": report.transfers,
        "accounts": report.accounts,
        "seconds": round(report.seconds, 2),
        "entries_per_s": round(report.entries / report.seconds),
        "ok": report.ok,
        "generate_seconds": round(generated),
    }
