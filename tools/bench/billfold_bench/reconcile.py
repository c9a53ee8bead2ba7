"""`billfold bench reconcile`: time reconciliation of a ledger of N entries.

Building a ten-million-entry ledger through the engine would take longer than the benchmark, so
the ledger is generated in SQL instead: consistent transfers between system accounts, each
entry with its account sequence number and running balance, account balances set to match. The
benchmark then reconciles it, and must find no discrepancy.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from billfold.config import Settings
from billfold.ledger.reconcile import reconcile
from billfold.platform.db import create_pool
from billfold.platform.migrate import apply_migrations
from billfold_bench.seed import scratch_database

GENERATE = [
    """
    INSERT INTO accounts (kind, owner, currency, overdraft_limit_minor)
    SELECT 'system', 'bench', 'USD', 1000000000000000 FROM generate_series(1, $1)
    """,
    """
    INSERT INTO transfers (id, kind, code, amount_minor, currency, created_at)
    SELECT g, 'transfer', 'p2p', 1 + g % 997, 'USD', now() FROM generate_series(1, $1::bigint) g
    """,
    # Each transfer moves money from one pseudo-random account to another.
    """
    INSERT INTO entries (account_id, account_seq, transfer_id, amount_minor, currency, pending,
                         balance_after_minor, created_at)
    SELECT account_id,
           row_number() OVER w,
           transfer_id, amount_minor, 'USD', false,
           sum(amount_minor) OVER (w ROWS UNBOUNDED PRECEDING),
           now()
      FROM (
            SELECT g AS transfer_id, 1 + (g * 7919) % $2 AS account_id,
                   -(1 + g % 997) AS amount_minor
              FROM generate_series(1, $1::bigint) g
            UNION ALL
            SELECT g, 1 + (g * 7919 + 1 + g % ($2 - 1)) % $2, 1 + g % 997
              FROM generate_series(1, $1::bigint) g
           ) legs
    WINDOW w AS (PARTITION BY account_id ORDER BY transfer_id)
    """,
    """
    UPDATE accounts a SET posted_minor = s.total, version = s.n
      FROM (SELECT account_id, sum(amount_minor) AS total, count(*) AS n
              FROM entries GROUP BY account_id) s
     WHERE a.id = s.account_id
    """,
]


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
                await conn.execute("SET session_replication_role = replica")
                await conn.execute("SET work_mem = '1GB'")
                await conn.execute(GENERATE[0], accounts)
                await conn.execute(GENERATE[1], entries // 2)
                await conn.execute(GENERATE[2], entries // 2, accounts)
                await conn.execute(GENERATE[3])
                # The pool no longer resets sessions (see platform/db.py): undo these by hand.
                await conn.execute("RESET session_replication_role; RESET work_mem")
                await conn.execute("VACUUM ANALYZE accounts")
                await conn.execute("VACUUM ANALYZE transfers")
                await conn.execute("VACUUM ANALYZE entries")
                say(f"generated in {time.perf_counter() - started:.0f}s; reconciling ...")
            report = await reconcile(
                pool,
                workers=workers,
                progress=lambda _kind, done, total: (
                    say(f"  {done}/{total} ranges") if done % 16 == 0 or done == total else None
                ),
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
    }
