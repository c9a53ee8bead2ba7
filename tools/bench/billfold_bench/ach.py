"""`billfold bench ach-import`: how long a bank's returns file of N entries takes to apply.

Each run starts `returns` ACH add-funds through the product's own path (verified bank accounts,
limits, the ledger's holds), exports the day's NACHA file, has the sandbox bank return every
entry (R01), then times `billfold ach import`'s work on that file: parse, look up, void each
hold, record each return. The ledger reconciles at the end.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from billfold.config import Settings
from billfold.funding import ach
from billfold.funding.ach.files import export_file, import_returns
from billfold.funding.bank_accounts import INDEX_PURPOSE, sealed_context
from billfold.funding.movements import add_funds_ach
from billfold.funding.service import Funding
from billfold.ledger.engine import Ledger
from billfold.ledger.reconcile import reconcile
from billfold.platform.security import hash_password
from billfold.wallet.users import get_user
from billfold_bench import say
from billfold_bench.api import SEED_USERS
from billfold_bench.seed import migrated_pool, scratch_database

PER_USER = 10  # add-funds per person per run, of at most $9.99: inside the daily limit
STARTERS = 64


async def run_ach_bench(settings: Settings, dsn: str, *, returns: int, runs: int) -> dict[str, Any]:
    async with scratch_database(dsn) as database_url:
        sized = settings.model_copy(update={"db_pool_max": 20, "data_keys": _key()})
        pool = await migrated_pool(database_url, sized)
        ledger = Ledger(pool, sized)
        try:
            await ledger.start()
            funding = await Funding.start(pool, ledger, sized)
            users = await _people_with_banks(funding, max(1, returns // PER_USER))
            results = [await _one_run(funding, users, returns, n + 1) for n in range(runs)]
            await ledger.stop()
            report = await reconcile(pool)
        finally:
            await pool.close()
    apply_s = sorted(r["apply_s"] for r in results)[len(results) // 2]
    parse_s = sorted(r["parse_s"] for r in results)[len(results) // 2]
    return {
        "benchmark": "ach-import",
        "returns": returns,
        "runs": results,
        "apply_s_median": apply_s,
        "parse_s_median": parse_s,
        "returns_per_s": round(returns / apply_s, 1),
        "reconciled": report.ok,
    }


async def _one_run(
    funding: Funding, users: list[tuple[Any, uuid.UUID]], returns: int, run: int
) -> dict[str, Any]:
    say(f"run {run}: starting {returns:,} ACH add-funds ...")
    gate = asyncio.Semaphore(STARTERS)

    async def start(n: int) -> None:
        user, bank_id = users[n % len(users)]
        async with gate:
            await add_funds_ach(funding, user, 100 + n % 900, str(bank_id), f"bench-{run}-{n}")

    await asyncio.gather(*(start(n) for n in range(returns)))
    with tempfile.TemporaryDirectory() as folder:
        sent_path = Path(folder) / "out.ach"
        await export_file(funding, sent_path)
        sent = ach.parse(sent_path.read_text())
    traces = [e.trace_number for b in sent.batches for e in b.entries if e.transaction_code == 27]
    text = ach.write(
        ach.make_returns_file(sent, dict.fromkeys(traces, "R01"), created_at=datetime.now(UTC))
    )
    started = time.perf_counter()
    ach.parse(text)
    parse_s = time.perf_counter() - started
    say(f"run {run}: applying a returns file of {len(traces):,} entries ...")
    started = time.perf_counter()
    report = await import_returns(funding, text, name="returns.ach")
    apply_s = time.perf_counter() - started
    say(f"run {run}: {report.applied:,} applied in {apply_s:.2f} s (parse {parse_s:.2f} s)")
    if report.applied != len(traces) or report.refused:
        raise RuntimeError(
            f"{report.applied} of {len(traces)} returns applied: {report.refused[:3]}"
        )
    return {"entries": len(traces), "apply_s": round(apply_s, 3), "parse_s": round(parse_s, 3)}


async def _people_with_banks(funding: Funding, count: int) -> list[tuple[Any, uuid.UUID]]:
    """People with a verified bank account each, made in bulk (linking through the API would
    send and verify micro-deposits, which this benchmark does not measure)."""
    pool: asyncpg.Pool = funding.pool
    say(f"signing up {count:,} people with verified bank accounts ...")
    rows = await pool.fetch(SEED_USERS, count, hash_password(secrets.token_hex(8)))
    people = []
    for row in rows:
        bank_id = uuid.uuid4()
        number = f"{secrets.randbelow(10**12):012d}"
        sealed = funding.keys.seal(number, sealed_context(bank_id))
        await pool.execute(
            """INSERT INTO bank_accounts (id, user_id, routing_number, account_last4,
                   account_number_enc, account_number_dek, key_id, account_index, holder_name,
                   account_type, status, micro_amounts, verified_at, created_at)
               VALUES ($1, $2, '011000015', $3, $4, $5, $6, $7, 'Bench Person', 'checking',
                       'verified', '{1,2}', now(), now())""",
            bank_id,
            row["user_id"],
            number[-4:],
            sealed.ciphertext,
            sealed.wrapped_key,
            sealed.key_id,
            funding.keys.blind_index(f"011000015:{number}", INDEX_PURPOSE),
        )
        people.append((await get_user(pool, row["user_id"]), bank_id))
    return people


def _key() -> str:
    return f"bench:{base64.b64encode(secrets.token_bytes(32)).decode()}"
