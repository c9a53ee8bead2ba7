"""Reading a NACHA file: `parse` and its checks (the contract is in nacha.py's docstring)."""

from __future__ import annotations

import dataclasses

from billfold.funding.ach.fields import (
    ADV,
    IAT,
    batch_layout,
    digits,
    read_addenda,
    read_batch_header,
    read_entry,
    read_file_header,
)
from billfold.funding.ach.options import STRICT, ReadOptions
from billfold.funding.ach.records import (
    BLOCKING_FACTOR,
    PADDING_RECORD,
    RECORD_LENGTH,
    AchFile,
    Addenda,
    Batch,
    EntryDetail,
    NachaError,
    NachaFinding,
    find_control_character,
    is_debit,
)

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
