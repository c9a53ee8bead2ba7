"""A NACHA (ACH) file parser and writer, in pure Python.

`parse` refuses a file it cannot read with certainty, with a `NachaError` that names the line and
field; it never lets another exception out, whatever bytes it is given. Refused: records that are
not 94 characters or hold control characters; records out of order or missing (an entry outside
a batch, an addenda its entry does not announce, a batch without its control, no file header); a
field holding what it cannot hold (text in a number, a code outside NACHA's tables, a routing
number failing its check digit); a batch that disagrees with its own control, as moov-io's reader
refuses it; a file control that contradicts itself (no blocks, or money but no entries).

A file that reads whole and unambiguously but breaks a rule about how its parts agree comes back
with `AchFile.findings`, each naming line and field as an error would: a file control that
disagrees with the batches (moov-io's reader leaves these to its Validate), or none at all; a
debit in a credits-only batch or the reverse; numbering that disagrees with the records' order
(batch numbers, trace numbers, addenda sequence numbers, a CTX entry's addenda count); a blank
mandatory header field; an effective entry date that cannot be read (read as None). Whoever
acts on a file decides what its findings allow.

`ReadOptions` (options.py) lets through, each only when asked and each with a finding,
what moov-io/ach reads only with its options: no file header, batches without their controls,
a bank's own return code. A fragment of a file reads so into its batches.

`write` produces a file and reads it back with `parse`, refusing a finding as an error, so our own
files break no rule. IAT and ADV files are read but not written. Leniencies, each one something
real banks send: CRLF line endings, one long line with no line breaks, trailing newlines, missing
block padding, records whose trailing blanks were stripped, Latin-1 text in alphameric fields,
blank or all-zero effective entry dates, a settlement date of 000, a blank file ID modifier, and a
batch's company id justified differently in its header and its control.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import datetime

from billfold.funding.ach.fields import (
    FILE_ID_MODIFIERS,
    STANDARD,
    batch_layout,
    put_alpha,
    put_digits,
    put_number,
    put_yymmdd,
)
from billfold.funding.ach.options import ReadOptions
from billfold.funding.ach.read import parse, split_records
from billfold.funding.ach.records import (
    ADV_TRANSACTION_CODES,
    BLOCKING_FACTOR,
    PADDING_RECORD,
    RETURN_CODES,
    AchFile,
    Addenda,
    Batch,
    EntryDetail,
    NachaError,
    NachaFinding,
    check_digit,
    is_debit,
    is_digits,
    routing_checksum_ok,
)

__all__ = [
    "AchFile",
    "Addenda",
    "Batch",
    "EntryDetail",
    "NachaError",
    "NachaFinding",
    "ReadOptions",
    "check_digit",
    "make_returns_file",
    "parse",
    "routing_checksum_ok",
    "split_records",
    "trace_number",
    "write",
]


# A returns file for a sandbox is built in memory; bound it like everything else that grows.
MAX_RETURNS = 100_000


def trace_number(odfi_id: str, sequence: int) -> str:
    """The 15-digit trace number of an entry: the ODFI's 8-digit id and a 7-digit sequence."""
    if len(odfi_id) != 8 or not is_digits(odfi_id):
        raise ValueError(f"ODFI id {odfi_id!r} is not 8 digits")
    if not 0 <= sequence < 10**7:
        raise ValueError(f"trace sequence {sequence} does not fit in 7 digits")
    return f"{odfi_id}{sequence:07d}"


def write(ach: AchFile) -> str:
    """The file as 94-character records separated by newlines, padded to whole blocks of ten.

    Control records, counts, the entry hash, the totals, the addenda indicators and the addenda
    sequence numbers are computed here. Errors carry the number of the record being written.
    """
    records = [_file_header(ach)]
    for batch in ach.batches:
        records.extend(_batch_records(batch, len(records) + 1))
    records.append(_file_control(ach, len(records) + 1))
    records.extend([PADDING_RECORD] * (-len(records) % BLOCKING_FACTOR))
    text = "\n".join(records) + "\n"
    # Our own files break no rule at all: a finding in them is refused like an error.
    written = parse(text, name="output")
    if written.findings:
        raise written.findings[0].refusal()
    return text


def _put_routing(text: str, line: int, field: str) -> str:
    if len(text) not in (9, 10) or not is_digits(text):
        raise NachaError(line, field, text, f"{text!r} is not a 9- or 10-digit routing number")
    return text.rjust(10)


def _file_header(ach: AchFile) -> str:
    modifier = ach.file_id_modifier.upper()
    if modifier not in FILE_ID_MODIFIERS:
        raise NachaError(1, "file_id_modifier", modifier, f"{modifier!r} is not A-Z or 0-9")
    time = ach.creation_time and put_digits(ach.creation_time, 4, 1, "creation_time")
    return "".join(
        (
            "101",
            _put_routing(ach.immediate_destination, 1, "immediate_destination"),
            _put_routing(ach.immediate_origin, 1, "immediate_origin"),
            put_yymmdd(ach.creation_date, 1, "creation_date"),
            time or "    ",
            modifier,
            "094101",
            put_alpha(ach.destination_name, 23, 1, "destination_name"),
            put_alpha(ach.origin_name, 23, 1, "origin_name"),
            put_alpha(ach.reference_code, 8, 1, "reference_code"),
        )
    )


def _batch_records(batch: Batch, line: int) -> Iterator[str]:
    header = _batch_header(batch, batch.sec_code.upper(), line)
    if batch_layout(header) != STANDARD:
        sec = header[50:53]
        raise NachaError(line, "sec_code", sec, f"writing {sec} batches is not supported")
    yield header
    for entry in batch.entries:
        line += 1
        yield _entry(entry, line)
        sequence = 0
        for addenda in entry.addenda:
            line += 1
            sequence += addenda.type_code == "05"
            yield _addenda(addenda, sequence, entry.trace_number)
    yield _batch_control(batch, line + 1)


def _batch_header(batch: Batch, sec: str, line: int) -> str:
    return "".join(
        (
            "5",
            put_number(batch.service_class_code, 3, line, "service_class_code"),
            put_alpha(batch.company_name, 16, line, "company_name"),
            put_alpha(batch.company_discretionary_data, 20, line, "company_discretionary_data"),
            put_alpha(batch.company_id, 10, line, "company_id"),
            put_alpha(sec, 3, line, "sec_code"),
            put_alpha(batch.entry_description, 10, line, "entry_description"),
            put_alpha(batch.descriptive_date, 6, line, "descriptive_date"),
            put_yymmdd(batch.effective_entry_date, line, "effective_entry_date"),
            put_alpha(batch.settlement_date, 3, line, "settlement_date"),
            put_alpha(batch.originator_status_code, 1, line, "originator_status_code"),
            put_digits(batch.odfi_id, 8, line, "odfi_id"),
            put_number(batch.batch_number, 7, line, "batch_number"),
        )
    )


def _entry(entry: EntryDetail, line: int) -> str:
    return "".join(
        (
            "6",
            put_number(entry.transaction_code, 2, line, "transaction_code"),
            put_digits(entry.rdfi_routing, 9, line, "rdfi_routing"),
            put_alpha(entry.account_number, 17, line, "account_number"),
            put_number(entry.amount_minor, 10, line, "amount"),
            put_alpha(entry.individual_id, 15, line, "individual_id"),
            put_alpha(entry.individual_name, 22, line, "individual_name"),
            put_alpha(entry.discretionary_data, 2, line, "discretionary_data"),
            "1" if entry.addenda else "0",
            put_digits(entry.trace_number, 15, line, "trace_number"),
        )
    )


def _addenda(addenda: Addenda, sequence: int, trace: str) -> str:
    if addenda.type_code != "05":
        return addenda.raw
    # A payment addenda ends with its place among the entry's addenda and the entry's sequence.
    return f"{addenda.raw[:83]}{sequence:04d}{trace[-7:]}"


def _batch_control(batch: Batch, line: int) -> str:
    return "".join(
        (
            "8",
            put_number(batch.service_class_code, 3, line, "service_class_code"),
            put_number(batch.entry_addenda_count, 6, line, "entry_addenda_count"),
            put_number(batch.entry_hash, 10, line, "entry_hash"),
            put_number(batch.total_debit_minor, 12, line, "total_debit"),
            put_number(batch.total_credit_minor, 12, line, "total_credit"),
            put_alpha(batch.company_id, 10, line, "company_id"),
            " " * 25,  # message authentication code and reserved
            put_digits(batch.odfi_id, 8, line, "odfi_id"),
            put_number(batch.batch_number, 7, line, "batch_number"),
        )
    )


def _file_control(ach: AchFile, line: int) -> str:
    return "".join(
        (
            "9",
            put_number(len(ach.batches), 6, line, "batch_count"),
            put_number(ach.block_count, 6, line, "block_count"),
            put_number(ach.entry_addenda_count, 8, line, "entry_addenda_count"),
            put_number(ach.entry_hash, 10, line, "entry_hash"),
            put_number(ach.total_debit_minor, 12, line, "total_debit"),
            put_number(ach.total_credit_minor, 12, line, "total_credit"),
            " " * 39,
        )
    )


def make_returns_file(
    original: AchFile,
    return_codes: Mapping[str, str],
    *,
    created_at: datetime,
    file_id_modifier: str = "A",
) -> AchFile:
    """The returns file a bank would send back for `original`: what the sandbox bank answers.

    `return_codes` maps the trace numbers of entries to return to their return reason code
    ("R01"). Each return entry goes back to the original ODFI, carries the returning RDFI's
    trace number and one 99 addenda; return entries are batched by original batch and RDFI.
    """
    if len(return_codes) > MAX_RETURNS:
        raise ValueError(f"{len(return_codes)} returns exceed the limit of {MAX_RETURNS}")
    unknown = set(return_codes) - {e.trace_number for b in original.batches for e in b.entries}
    if unknown:
        raise ValueError(f"trace number {min(unknown)!r} is not in the original file")
    batches: list[Batch] = []
    for batch in original.batches:
        by_rdfi: dict[str, list[EntryDetail]] = {}
        for entry in batch.entries:
            if entry.trace_number in return_codes:
                by_rdfi.setdefault(entry.rdfi_routing[:8], []).append(entry)
        for rdfi_id, entries in sorted(by_rdfi.items()):
            returned = tuple(
                _return_entry(batch, entry, return_codes[entry.trace_number], rdfi_id, n)
                for n, entry in enumerate(entries, 1)
            )
            batches.append(_return_batch(batch, rdfi_id, len(batches) + 1, returned, created_at))
    return AchFile(
        immediate_destination=original.immediate_origin,
        immediate_origin=original.immediate_destination,
        creation_date=created_at.date(),
        creation_time=created_at.strftime("%H%M"),
        file_id_modifier=file_id_modifier,
        destination_name=original.origin_name,
        origin_name=original.destination_name,
        reference_code="RETURNS",
        batches=tuple(batches),
    )


def _return_entry(
    batch: Batch, entry: EntryDetail, return_code: str, rdfi_id: str, sequence: int
) -> EntryDetail:
    if batch.sec_code == "IAT" or entry.transaction_code in ADV_TRANSACTION_CODES:
        raise ValueError(f"entry {entry.trace_number!r} is {batch.sec_code}, which has no returns")
    if return_code not in RETURN_CODES:
        raise ValueError(f"return code {return_code!r} is not a NACHA return reason code")
    trace = trace_number(rdfi_id, sequence)
    # A return carries the original's account type with 1 (credit) or 6 (debit) as its last digit.
    code = entry.transaction_code // 10 * 10 + (6 if is_debit(entry.transaction_code) else 1)
    addenda = Addenda.return_(return_code, entry.trace_number, rdfi_id, trace)
    return dataclasses.replace(
        entry,
        transaction_code=code,
        rdfi_routing=batch.odfi_id + check_digit(batch.odfi_id),
        trace_number=trace,
        addenda=(addenda,),
        raw="",
    )


def _return_batch(
    batch: Batch,
    rdfi_id: str,
    batch_number: int,
    entries: tuple[EntryDetail, ...],
    created_at: datetime,
) -> Batch:
    debits = sum(e.is_debit for e in entries)
    service_class = 225 if debits == len(entries) else 220 if debits == 0 else 200
    return dataclasses.replace(
        batch,
        service_class_code=service_class,
        effective_entry_date=created_at.date(),
        settlement_date="",
        odfi_id=rdfi_id,
        batch_number=batch_number,
        entries=entries,
        raw="",
    )
