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

`ReadOptions` (nacha_options.py) lets through, each only when asked and each with a finding,
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

from billfold.funding.nacha_options import STRICT, ReadOptions
from billfold.funding.nacha_records import (
    ADV,
    ADV_TRANSACTION_CODES,
    BLOCKING_FACTOR,
    FILE_ID_MODIFIERS,
    IAT,
    PADDING_RECORD,
    RECORD_LENGTH,
    RETURN_CODES,
    STANDARD,
    AchFile,
    Addenda,
    Batch,
    EntryDetail,
    NachaError,
    NachaFinding,
    batch_layout,
    check_digit,
    digits,
    find_control_character,
    is_debit,
    is_digits,
    put_alpha,
    put_digits,
    put_number,
    put_yymmdd,
    read_addenda,
    read_batch_header,
    read_entry,
    read_file_header,
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

_RECORD_NAMES = {
    "1": "a file header",
    "5": "a batch header",
    "6": "an entry detail",
    "7": "an addenda",
    "8": "a batch control",
    "9": "a file control",
}
_IAT_MANDATORY_ADDENDA = ["10", "11", "12", "13", "14", "15", "16"]
# Entries that state how many addenda follow them, in positions 55-58.
_COUNTED_ADDENDA_SECS = frozenset({"CTX", "ATX", "TRX"})
_COMPUTED_AS = {
    "service_class_code": "the batch header says",
    "odfi_id": "the batch header says",
    "batch_number": "the batch header says",
    "entry_addenda_count": "the records count",
    "batch_count": "the records count",
    "block_count": "the records fill",
    "entry_hash": "entries sum to",
    "total_debit": "debit entries sum to",
    "total_credit": "credit entries sum to",
}
# The file header of a file read without one: its own fields are unknown, not blank by rule.
_HEADERLESS = AchFile("", "", None, "", "", "", "", "")
# A returns file for a sandbox is built in memory; bound it like everything else that grows.
MAX_RETURNS = 100_000


def parse(data: str | bytes, *, name: str = "file", options: ReadOptions = STRICT) -> AchFile:
    """Read a whole NACHA file; `name` prefixes error and finding messages (a file name, say).

    `options` allows what NACHA's rules do not, each use reported as a finding; none by default.
    """
    try:
        ach = _read_file(split_records(data), options)
    except NachaError as err:
        err.name = name
        raise
    findings = tuple(dataclasses.replace(finding, name=name) for finding in ach.findings)
    return dataclasses.replace(ach, findings=findings)


def _decode(data: str | bytes) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Some banks send Windows-1252 names; Latin-1 decodes every byte and keeps the width.
        return data.decode("latin-1")


def split_records(data: str | bytes) -> list[str]:
    """The file's records, each exactly 94 characters, or a NachaError naming the line at fault."""
    lines = _decode(data).split("\n")
    while lines and lines[-1] in ("", "\r"):
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    if len(lines) == 1 and len(lines[0]) % RECORD_LENGTH == 0:
        # No line breaks at all: the records simply follow one another.
        lines = [lines[0][i : i + RECORD_LENGTH] for i in range(0, len(lines[0]), RECORD_LENGTH)]
    return [_record(line, number) for number, line in enumerate(lines, 1)]


def _record(line: str, number: int) -> str:
    size = len(line)
    if size > RECORD_LENGTH or (size < RECORD_LENGTH and line[-1:] in ("", " ")):
        # Some systems strip the blanks that end a record, and we put them back; a short record
        # that still ends in a blank was not stripped but cut, and what it lost is unknown.
        cut = ", and ends in a blank: it was cut short" if 0 < size < RECORD_LENGTH else ""
        detail = f"record is {size} characters, expected {RECORD_LENGTH}{cut}"
        raise NachaError(number, "record_length", str(size), detail)
    bad = find_control_character(line)
    if bad is not None:
        raise NachaError(number, "characters", bad, f"control character {bad!r} in the record")
    return line.ljust(RECORD_LENGTH)


def _misplaced(records: list[str], index: int, expected: str) -> NachaError:
    if index >= len(records):
        return NachaError(index + 1, "record_type", "", f"the file ends where {expected} belongs")
    kind = records[index][0]
    found = _RECORD_NAMES.get(kind, "an unknown record type")
    detail = f"{kind!r} ({found}) where {expected} belongs"
    return NachaError(index + 1, "record_type", kind, detail)


def _read_file(records: list[str], options: ReadOptions) -> AchFile:
    """The file in `records`: header, batches, control, padding, each checked against the rest."""
    notes: list[NachaFinding] = []
    if records and records[0][0] == "1":
        header, index = read_file_header(records[0], notes), 1
    elif records and records[0][0] == "5" and options.allow_missing_file_header:
        notes.append(
            _allowed(_misplaced(records, 0, "the file header '1'"), "allow_missing_file_header")
        )
        header, index = _HEADERLESS, 0
    else:
        raise _misplaced(records, 0, "the file header '1'")
    batches: list[Batch] = []
    while index < len(records) and records[index][0] == "5":
        if batches and (batch_layout(records[index]) == ADV) != (batches[0].sec_code == ADV):
            raise NachaError(index + 1, "sec_code", ADV, "ADV batches cannot share a file")
        header_line = index + 1
        batch, index = _read_batch(records, index, notes, options)
        if batches and batch.batch_number <= batches[-1].batch_number:
            number = f"{batch.batch_number:07d}"
            detail = f"batch number {number} does not follow {batches[-1].batch_number:07d}"
            notes.append(NachaFinding(header_line, "batch_number", number, detail))
        batches.append(batch)
    ach = dataclasses.replace(header, batches=tuple(batches))
    if index == len(records):
        # The file control only sums up the records before it, which read the same without it.
        # (A file cut at a batch's end reads so too: that is why a finding stops an import.)
        detail = "the file ends where the file control '9' belongs"
        notes.append(NachaFinding(index + 1, "record_type", "", detail))
    elif records[index][0] != "9":
        raise _misplaced(records, index, "a batch header '5' or the file control '9'")
    else:
        _check_file_control(records[index], index + 1, ach, notes)
        _check_padding(records, index + 1, ach)
    return dataclasses.replace(ach, findings=tuple(notes))


def _read_batch(
    records: list[str], index: int, notes: list[NachaFinding], options: ReadOptions
) -> tuple[Batch, int]:
    header_line = index + 1
    layout = batch_layout(records[index])
    header = read_batch_header(records[index], header_line, layout, notes)
    entries: list[EntryDetail] = []
    index += 1
    while index < len(records) and records[index][0] == "6":
        entry_line = index + 1
        entry, index = _read_entry(records, index, layout, header, notes, options)
        if entries and entry.trace_number <= entries[-1].trace_number:
            trace, previous = entry.trace_number, entries[-1].trace_number
            detail = f"trace number {trace} does not follow {previous} in its batch"
            notes.append(NachaFinding(entry_line, "trace_number", trace, detail))
        entries.append(entry)
    ended = index >= len(records) or records[index][0] in ("5", "9")
    if entries and ended and options.allow_missing_batch_control:
        # What follows starts something else, so the batch ends here: only its control is gone.
        missing = _misplaced(records, index, f"the control '8' of the batch at line {header_line}")
        notes.append(_allowed(missing, "allow_missing_batch_control"))
        return dataclasses.replace(header, entries=tuple(entries)), index
    if index >= len(records) or records[index][0] != "8":
        expected = f"an entry '6' or the control '8' of the batch at line {header_line}"
        raise _misplaced(records, index, expected)
    if not entries:
        raise NachaError(header_line, "entries", "", "the batch has no entries")
    batch = dataclasses.replace(header, entries=tuple(entries))
    _check_batch_control(records[index], index + 1, batch, layout)
    return batch, index + 1


def _read_entry(
    records: list[str],
    index: int,
    layout: str,
    header: Batch,
    notes: list[NachaFinding],
    options: ReadOptions,
) -> tuple[EntryDetail, int]:
    line, record = index + 1, records[index]
    fields = read_entry(record, line, layout)
    code, service_class = fields.transaction_code, header.service_class_code
    if service_class in (220, 225) and is_debit(code) != (service_class == 225):
        # The entry's own code says which way its money goes; the batch's class only sums it up.
        allowed = "credits" if service_class == 220 else "debits"
        detail = f"{code} is not one of the {allowed} that service class {service_class} allows"
        notes.append(NachaFinding(line, "transaction_code", str(code), detail))
    flagged = record[78] == "1"
    addenda: list[Addenda] = []
    index += 1
    while index < len(records) and records[index][0] == "7":
        if not flagged:
            detail = f"an addenda follows the entry at line {line}, whose indicator is '0'"
            raise NachaError(index + 1, "addenda_indicator", "0", detail)
        item = read_addenda(records[index], index + 1, layout, header.sec_code, options, notes)
        addenda.append(item)
        index += 1
    if flagged and not addenda:
        detail = "'1' says addenda follow, but the next record is not an addenda"
        raise NachaError(line, "addenda_indicator", "1", detail)
    _check_addenda(record, fields.trace_number, addenda, line, layout, header.sec_code, notes)
    return EntryDetail(*fields, addenda=tuple(addenda), raw=record), index


def _allowed(missing: NachaError, option: str) -> NachaFinding:
    """A missing record that an option lets through, reported where the record belongs."""
    detail = f"{missing.detail}: read without it ({option})"
    return NachaFinding(missing.line, missing.field, missing.value, detail)


def _mismatch(line: int, field: str, found: str, wanted: str) -> NachaFinding | None:
    if found == wanted:
        return None
    return NachaFinding(line, field, found, f"{found!r} should be {wanted!r}")


def _check_addenda(
    record: str,
    trace: str,
    addenda: list[Addenda],
    line: int,
    layout: str,
    sec: str,
    notes: list[NachaFinding],
) -> None:
    """Sequence numbers: of each addenda among its type, and of its entry within the batch.

    They number what the order of the records already says (an addenda belongs to the entry it
    follows), so a wrong one is a finding; the writer numbers addenda afresh.
    """
    seen: dict[str, int] = {}
    checks: list[NachaFinding | None] = []
    for offset, item in enumerate(addenda, 1):
        seen[item.type_code] = seen.get(item.type_code, 0) + 1
        if item.type_code in ("05", "17", "18"):
            wanted = f"{seen[item.type_code]:04d}"
            checks.append(_mismatch(line + offset, "addenda_sequence", item.raw[83:87], wanted))
        if item.type_code not in ("02", "98", "99"):
            found = item.raw[87:94]
            checks.append(_mismatch(line + offset, "entry_sequence", found, trace[-7:]))
    types = [item.type_code for item in addenda]
    if layout == IAT:
        _check_iat_addenda(record, types, line)
    if sec in _COUNTED_ADDENDA_SECS:
        declared = digits(record, 55, 58, line, "addenda_count")
        checks.append(_mismatch(line, "addenda_count", declared, f"{types.count('05'):04d}"))
    notes.extend(check for check in checks if check is not None)


def _check_iat_addenda(record: str, types: list[str], line: int) -> None:
    rest = types[7:]
    if (
        types[:7] != _IAT_MANDATORY_ADDENDA
        or rest != sorted(rest)
        or rest.count("17") > 2
        or rest.count("18") > 5
        or rest.count("98") + rest.count("99") > 1
    ):
        detail = (
            f"IAT addenda {' '.join(types) or 'none'} are not 10 to 16 in order, then at most"
            " two 17s, five 18s and one 98 or 99"
        )
        raise NachaError(line, "addenda", " ".join(types), detail)
    # The count in positions 13-16 is not compared: moov-io's files say 0007 even with 17 and 18
    # addenda present, and whether NACHA counts those optional addenda is not settled here.
    digits(record, 13, 16, line, "addenda_count")


def _disagreement(
    record: str, span: tuple[int, int], line: int, field: str, computed: int
) -> NachaFinding | None:
    """A control field, which must be numeric, compared with what its records add up to."""
    text = digits(record, span[0], span[1], line, field)
    wanted = f"{computed:0{len(text)}d}"
    if text == wanted:
        return None
    control = "batch control" if record[0] == "8" else "file control"
    detail = f"{control} says {text}, {_COMPUTED_AS[field]} {wanted}"
    return NachaFinding(line, field, text, detail)


def _check_batch_control(record: str, line: int, batch: Batch, layout: str) -> None:
    """A batch that disagrees with its own control is refused, as moov-io's reader refuses it."""
    wide = layout == ADV  # ADV controls carry 20-digit totals and no company id.
    checks = (
        ((2, 4), "service_class_code", batch.service_class_code),
        ((5, 10), "entry_addenda_count", batch.entry_addenda_count),
        ((11, 20), "entry_hash", batch.entry_hash),
        ((21, 40) if wide else (21, 32), "total_debit", batch.total_debit_minor),
        ((41, 60) if wide else (33, 44), "total_credit", batch.total_credit_minor),
        ((80, 87), "odfi_id", int(batch.odfi_id)),
        ((88, 94), "batch_number", batch.batch_number),
    )
    for span, field, computed in checks:
        disagreement = _disagreement(record, span, line, field, computed)
        if disagreement is not None:
            raise disagreement.refusal()
    company = record[44:54].strip(" ")
    # IAT batch controls leave the company id blank in practice (and in moov-io's files), and
    # banks justify the id differently in header and control: compare it without the blanks.
    if (layout == IAT and not company) or wide:
        return
    mismatch = _mismatch(line, "company_id", company, batch.company_id.strip(" "))
    if mismatch is not None:
        raise mismatch.refusal()


def _check_file_control(record: str, line: int, ach: AchFile, notes: list[NachaFinding]) -> None:
    """The file control against the batches: each disagreement is a finding.

    A control that contradicts itself is refused, as moov-io's reader refuses it: a file fills
    at least one block, and one that moves money has batches, entries and an entry hash.
    """
    wide = bool(ach.batches) and ach.batches[0].sec_code == ADV
    checks = (
        ((2, 7), "batch_count", len(ach.batches)),
        ((8, 13), "block_count", ach.block_count),
        ((14, 21), "entry_addenda_count", ach.entry_addenda_count),
        ((22, 31), "entry_hash", ach.entry_hash),
        ((32, 51) if wide else (32, 43), "total_debit", ach.total_debit_minor),
        ((52, 71) if wide else (44, 55), "total_credit", ach.total_credit_minor),
    )
    found = {field: int(digits(record, *span, line, field)) for span, field, _ in checks}
    moves_money = found["total_debit"] or found["total_credit"]
    for (first, last), field, _ in checks[:4]:
        if not found[field] and (moves_money or field == "block_count"):
            text = record[first - 1 : last]
            why = "a file fills a block" if field == "block_count" else "its totals are not zero"
            detail = f"file control says {text}, but {why}: the field is mandatory"
            raise NachaError(line, field, text, detail)
    for span, field, computed in checks:
        disagreement = _disagreement(record, span, line, field, computed)
        if disagreement is not None:
            notes.append(disagreement)


def _check_padding(records: list[str], start: int, ach: AchFile) -> None:
    for index in range(start, len(records)):
        if records[index] != PADDING_RECORD:
            detail = "only padding records of 94 '9's may follow the file control"
            raise NachaError(index + 1, "padding", records[index][0], detail)
    if len(records) > ach.block_count * BLOCKING_FACTOR:
        extra = str(len(records) - start)
        detail = f"{extra} padding records run past the file's {ach.block_count} blocks"
        raise NachaError(len(records), "padding", extra, detail)


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
