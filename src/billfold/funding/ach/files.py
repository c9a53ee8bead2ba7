"""NACHA files: the day's outgoing file for the bank, and the returns file it sends back.

Export marks the entries it writes as exported in the same transaction that reads them, and
the file is written whole before that transaction commits, so an entry goes out in one file
only. Import applies each return through the same path as the partner's webhooks; a file that
reads but breaks NACHA rules (its findings) is applied only when the operator accepts them.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from billfold.config import Settings
from billfold.funding import rails
from billfold.funding.ach import nacha
from billfold.funding.ach.fields import nacha_name
from billfold.funding.ach.records import AchFile, Batch, EntryDetail, NachaFinding, check_digit
from billfold.funding.bank_accounts import sealed_context
from billfold.funding.service import Funding, FundingTransfer
from billfold.platform.crypto import Sealed
from billfold.platform.errors import BillfoldError

MAX_ENTRIES = 100_000
# The batches of a file: (group, service class, SEC code, entry description). A person's
# add-funds (debits) and cash-outs and micro-deposits (credits) are consumer entries (PPD); a
# merchant's payout is a business's settlement, a corporate credit (CCD: the entry's name field
# is the receiving company's, the bank account's holder).
GROUPS = [
    ("debits", 225, "PPD", "ADD FUNDS"),
    ("credits", 220, "PPD", "PAYOUT"),
    ("payouts", 220, "CCD", "SETTLEMENT"),
]
_GROUP_OF = {"add_funds": "debits", "payout": "payouts"}
IMPORT_CONCURRENCY = 256

_UNEXPORTED = """
SELECT f.id, f.purpose, f.amount_minor, f.trace_number, b.id AS bank_account_id,
       b.routing_number, b.account_type, b.holder_name, b.account_number_enc,
       b.account_number_dek, b.key_id
  FROM funding_transfers f JOIN bank_accounts b ON b.id = f.bank_account_id
 WHERE f.rail = 'ach' AND f.exported_at IS NULL AND f.status = 'pending'
   AND f.risk_status IS NULL
 ORDER BY f.created_at, f.id
 LIMIT $1
   FOR UPDATE OF f SKIP LOCKED
"""


@dataclass
class ImportReport:
    entries: int = 0
    applied: int = 0
    ignored: int = 0
    refused: list[str] = field(default_factory=list)
    # The findings the operator accepted, as messages naming line and field.
    findings: list[str] = field(default_factory=list)


class FindingsNotAccepted(BillfoldError):
    """A returns file that reads but breaks NACHA rules, and so was not applied.

    Its controls no longer vouch for its entries (or its entries for themselves), so moving
    money on it is the operator's decision, taken after checking with the bank.
    """

    code = "nacha_findings"
    status = 422
    title = "The NACHA file breaks rules"

    def __init__(self, name: str, findings: tuple[NachaFinding, ...]) -> None:
        count = f"{len(findings)} finding{'' if len(findings) == 1 else 's'}"
        detail = f"{name} reads, but breaks NACHA rules ({count}); nothing was applied"
        super().__init__(detail, findings=[str(finding) for finding in findings])
        self.findings = findings


async def export_file(funding: Funding, out: Path, now: datetime | None = None) -> int:
    """Write the outgoing entries not yet sent to `out`; return how many. Nothing to send
    writes no file."""
    now = now or datetime.now(UTC)
    settings = funding.settings
    async with funding.pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(_UNEXPORTED, MAX_ENTRIES)
        if not rows:
            return 0
        entries: dict[str, list[EntryDetail]] = {group[0]: [] for group in GROUPS}
        for row in rows:
            sealed = Sealed(row["account_number_enc"], row["account_number_dek"], row["key_id"])
            number = funding.keys.open(sealed, sealed_context(row["bank_account_id"]))
            debit = row["purpose"] == "add_funds"
            savings = row["account_type"] == "savings"
            entry = EntryDetail(
                transaction_code=(37 if savings else 27) if debit else (32 if savings else 22),
                rdfi_routing=row["routing_number"],
                account_number=number,
                amount_minor=row["amount_minor"],
                individual_id=row["id"].hex[:15].upper(),
                individual_name=nacha_name(row["holder_name"], 22),
                discretionary_data="",
                trace_number=row["trace_number"],
            )
            entries[_GROUP_OF.get(row["purpose"], "credits")].append(entry)
        odfi = settings.ach_odfi_routing[:8]
        batches = [
            _batch(settings, n, service_class, sec, description, entries[group], now)
            for n, (group, service_class, sec, description) in enumerate(
                [g for g in GROUPS if entries[g[0]]], 1
            )
        ]
        text = nacha.write(
            AchFile(
                immediate_destination=settings.ach_odfi_routing,
                immediate_origin=odfi + check_digit(odfi),
                creation_date=now.date(),
                creation_time=now.strftime("%H%M"),
                file_id_modifier="A",
                destination_name="BILLFOLD BANK PARTNER",
                origin_name=settings.ach_company_name.upper(),
                reference_code="",
                batches=tuple(batches),
            )
        )
        await conn.execute(
            "UPDATE funding_transfers SET exported_at = $2 WHERE id = ANY($1::uuid[])",
            [r["id"] for r in rows],
            now,
        )
        _write_whole(out, text)
    return len(rows)


def _batch(
    settings: Settings,
    number: int,
    service_class: int,
    sec_code: str,
    description: str,
    entries: list[EntryDetail],
    now: datetime,
) -> Batch:
    return Batch(
        service_class_code=service_class,
        company_name=settings.ach_company_name.upper()[:16],
        company_discretionary_data="",
        company_id=settings.ach_company_id[:10],
        sec_code=sec_code,
        entry_description=description,
        descriptive_date="",
        effective_entry_date=now.date(),
        settlement_date="",
        originator_status_code="1",
        odfi_id=settings.ach_odfi_routing[:8],
        batch_number=number,
        # NACHA wants trace numbers ascending within a batch.
        entries=tuple(sorted(entries, key=lambda e: e.trace_number)),
    )


def _write_whole(out: Path, text: str) -> None:
    """Written to a draft, then renamed: a reader never sees half a file. The file holds full
    account numbers, so only its owner may read it."""
    draft = out.with_name(f".{out.name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(text)
    draft.replace(out)


async def import_returns(
    funding: Funding,
    text: str,
    *,
    name: str,
    accept_findings: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Apply each return in a returns file. The file is parsed whole first: a malformed file
    changes nothing, and nor does one with findings unless `accept_findings` (FindingsNotAccepted);
    accepted findings are listed in the report, which `billfold ach import` prints."""
    ach = nacha.parse(text, name=name)
    if ach.findings and not accept_findings:
        raise FindingsNotAccepted(name, ach.findings)
    returns = [
        (entry.addenda[0].original_trace, entry.addenda[0].return_code)
        for batch in ach.batches
        for entry in batch.entries
        if entry.addenda and entry.addenda[0].type_code == "99"
    ]
    report = ImportReport(entries=len(returns), findings=[str(f) for f in ach.findings])
    rows = await funding.pool.fetch(
        # A trace number is handed out again after its sequence starts over (migration 0015):
        # a return names the entry sent last that holds it, the only one it can still name.
        """SELECT DISTINCT ON (f.trace_number) f.*, w.account_id AS wallet_id
             FROM funding_transfers f
             JOIN wallets w ON w.user_id = f.user_id AND w.currency = f.currency
            WHERE f.trace_number = ANY($1::char(15)[])
            ORDER BY f.trace_number, f.exported_at DESC NULLS LAST""",
        [trace for trace, _ in returns],
    )
    by_trace = {r["trace_number"]: (FundingTransfer.from_row(r), r["wallet_id"]) for r in rows}
    gate = asyncio.Semaphore(IMPORT_CONCURRENCY)
    done = 0

    async def one(trace: str, code: str) -> None:
        nonlocal done
        async with gate:
            found = by_trace.get(trace)
            if found is None:
                report.refused.append(f"trace {trace}: no such entry was sent")
            else:
                outcome = await rails.return_(funding, found[0], code, wallet_id=found[1])
                if outcome.result == "applied":
                    report.applied += 1
                elif outcome.result == "ignored":
                    report.ignored += 1
                else:
                    report.refused.append(f"trace {trace}: {outcome.detail}")
            done += 1
            if progress is not None:
                progress(done, len(returns))

    await asyncio.gather(*(one(trace, code) for trace, code in returns))
    return report


def print_progress(done: int, total: int) -> None:
    if done == total or done % max(1, total // 10) == 0:
        print(f"ach import: {done}/{total} returns applied", file=sys.stderr, flush=True)
