"""A strict NACHA (ACH) file parser and writer, in pure Python.

`parse` refuses anything the NACHA format forbids with a `NachaError` that names the record and
field; it never lets another exception out, whatever bytes it is given. `write` produces a file
and reads it back with `parse` before returning it, so it cannot emit a file its own reader
would refuse. IAT and ADV files are read (their controls, counts, hashes and totals checked) but
not written. Leniencies, each one something real banks send: CRLF line endings, one long line
with no line breaks, trailing newlines, missing block padding, records whose trailing blanks
were stripped, Latin-1 text in alphameric fields, blank or all-zero effective entry dates, a
settlement date of 000, a blank file ID modifier, and a batch's company id justified
differently in its header and its control.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import datetime

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
# A returns file for a sandbox is built in memory; bound it like everything else that grows.
MAX_RETURNS = 100_000


def parse(data: str | bytes, *, name: str = "file") -> AchFile:
    """Read a whole NACHA file; `name` prefixes error messages (a file name, say)."""
    try:
        return _read_file(split_records(data))
    except NachaError as err:
        err.name = name
        raise


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


def _read_file(records: list[str]) -> AchFile:
    """The file in `records`: header, batches, control, padding, each checked against the rest."""
    if not records or records[0][0] != "1":
        raise _misplaced(records, 0, "the file header '1'")
    header = read_file_header(records[0])
    batches: list[Batch] = []
    index = 1
    while index < len(records) and records[index][0] == "5":
        if batches and (batch_layout(records[index]) == ADV) != (batches[0].sec_code == ADV):
            raise NachaError(index + 1, "sec_code", ADV, "ADV batches cannot share a file")
        header_line = index + 1
        batch, index = _read_batch(records, index)
        if batches and batch.batch_number <= batches[-1].batch_number:
            number = f"{batch.batch_number:07d}"
            detail = f"batch number {number} does not follow {batches[-1].batch_number:07d}"
            raise NachaError(header_line, "batch_number", number, detail)
        batches.append(batch)
    if index >= len(records) or records[index][0] != "9":
        raise _misplaced(records, index, "a batch header '5' or the file control '9'")
    ach = dataclasses.replace(header, batches=tuple(batches))
    _check_file_control(records[index], index + 1, ach)
    _check_padding(records, index + 1, ach)
    return ach


def _read_batch(records: list[str], index: int) -> tuple[Batch, int]:
    header_line = index + 1
    layout = batch_layout(records[index])
    header = read_batch_header(records[index], header_line, layout)
    entries: list[EntryDetail] = []
    index += 1
    while index < len(records) and records[index][0] == "6":
        entry_line = index + 1
        entry, index = _read_entry(records, index, layout, header)
        if entries and entry.trace_number <= entries[-1].trace_number:
            trace, previous = entry.trace_number, entries[-1].trace_number
            detail = f"trace number {trace} does not follow {previous} in its batch"
            raise NachaError(entry_line, "trace_number", trace, detail)
        entries.append(entry)
    if index >= len(records) or records[index][0] != "8":
        expected = f"an entry '6' or the control '8' of the batch at line {header_line}"
        raise _misplaced(records, index, expected)
    if not entries:
        raise NachaError(header_line, "entries", "", "the batch has no entries")
    batch = dataclasses.replace(header, entries=tuple(entries))
    _check_batch_control(records[index], index + 1, batch, layout)
    return batch, index + 1


def _read_entry(
    records: list[str], index: int, layout: str, header: Batch
) -> tuple[EntryDetail, int]:
    line, record = index + 1, records[index]
    fields = read_entry(record, line, layout)
    code, service_class = fields.transaction_code, header.service_class_code
    if service_class in (220, 225) and is_debit(code) != (service_class == 225):
        allowed = "credits" if service_class == 220 else "debits"
        detail = f"{code} is not one of the {allowed} that service class {service_class} allows"
        raise NachaError(line, "transaction_code", str(code), detail)
    flagged = record[78] == "1"
    addenda: list[Addenda] = []
    index += 1
    while index < len(records) and records[index][0] == "7":
        if not flagged:
            detail = f"an addenda follows the entry at line {line}, whose indicator is '0'"
            raise NachaError(index + 1, "addenda_indicator", "0", detail)
        addenda.append(read_addenda(records[index], index + 1, layout, header.sec_code))
        index += 1
    if flagged and not addenda:
        detail = "'1' says addenda follow, but the next record is not an addenda"
        raise NachaError(line, "addenda_indicator", "1", detail)
    _check_addenda(record, fields.trace_number, addenda, line, layout, header.sec_code)
    return EntryDetail(*fields, addenda=tuple(addenda), raw=record), index


def _expect(line: int, field: str, found: str, wanted: str) -> None:
    if found != wanted:
        raise NachaError(line, field, found, f"{found!r} should be {wanted!r}")


def _check_addenda(
    record: str, trace: str, addenda: list[Addenda], line: int, layout: str, sec: str
) -> None:
    """Sequence numbers: of each addenda among its type, and of its entry within the batch."""
    seen: dict[str, int] = {}
    for offset, item in enumerate(addenda, 1):
        seen[item.type_code] = seen.get(item.type_code, 0) + 1
        if item.type_code in ("05", "17", "18"):
            wanted = f"{seen[item.type_code]:04d}"
            _expect(line + offset, "addenda_sequence", item.raw[83:87], wanted)
        if item.type_code not in ("02", "98", "99"):
            _expect(line + offset, "entry_sequence", item.raw[87:94], trace[-7:])
    types = [item.type_code for item in addenda]
    if layout == IAT:
        _check_iat_addenda(record, types, line)
    if sec in _COUNTED_ADDENDA_SECS:
        declared = digits(record, 55, 58, line, "addenda_count")
        _expect(line, "addenda_count", declared, f"{types.count('05'):04d}")


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


def _agree(record: str, span: tuple[int, int], line: int, field: str, computed: int) -> None:
    """A control field, numeric, equal to what the records it controls add up to."""
    text = digits(record, span[0], span[1], line, field)
    wanted = f"{computed:0{len(text)}d}"
    if text != wanted:
        control = "batch control" if record[0] == "8" else "file control"
        detail = f"{control} says {text}, {_COMPUTED_AS[field]} {wanted}"
        raise NachaError(line, field, text, detail)


def _check_batch_control(record: str, line: int, batch: Batch, layout: str) -> None:
    _agree(record, (2, 4), line, "service_class_code", batch.service_class_code)
    _agree(record, (5, 10), line, "entry_addenda_count", batch.entry_addenda_count)
    _agree(record, (11, 20), line, "entry_hash", batch.entry_hash)
    wide = layout == ADV  # ADV controls carry 20-digit totals and no company id.
    _agree(record, (21, 40) if wide else (21, 32), line, "total_debit", batch.total_debit_minor)
    _agree(record, (41, 60) if wide else (33, 44), line, "total_credit", batch.total_credit_minor)
    _agree(record, (80, 87), line, "odfi_id", int(batch.odfi_id))
    _agree(record, (88, 94), line, "batch_number", batch.batch_number)
    company = record[44:54].strip(" ")
    # IAT batch controls leave the company id blank in practice (and in moov-io's files), and
    # banks justify the id differently in header and control: compare it without the blanks.
    if (layout == IAT and not company) or wide:
        return
    _expect(line, "company_id", company, batch.company_id.strip(" "))


def _check_file_control(record: str, line: int, ach: AchFile) -> None:
    _agree(record, (2, 7), line, "batch_count", len(ach.batches))
    _agree(record, (8, 13), line, "block_count", ach.block_count)
    _agree(record, (14, 21), line, "entry_addenda_count", ach.entry_addenda_count)
    _agree(record, (22, 31), line, "entry_hash", ach.entry_hash)
    wide = bool(ach.batches) and ach.batches[0].sec_code == ADV
    _agree(record, (32, 51) if wide else (32, 43), line, "total_debit", ach.total_debit_minor)
    _agree(record, (52, 71) if wide else (44, 55), line, "total_credit", ach.total_credit_minor)


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
    parse(text, name="output")
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
