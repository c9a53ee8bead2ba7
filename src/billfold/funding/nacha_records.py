"""The NACHA file model, its error, its code tables, field helpers, and single-record readers.

nacha.py checks how records fit together and writes files; this module knows one record at a
time. Positions here are NACHA's own, 1-based and inclusive as the Operating Rules print them,
so a layout can be checked against the rule book by eye.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

from billfold.funding.nacha_options import CUSTOM_RETURN_CODE, ReadOptions

RECORD_LENGTH = 94
BLOCKING_FACTOR = 10
PADDING_RECORD = "9" * RECORD_LENGTH

SERVICE_CLASSES = frozenset({200, 220, 225, 280})
# fmt: off
SEC_CODES = frozenset({
    "ACK", "ADV", "ARC", "ATX", "BOC", "CCD", "CIE", "COR", "CTX", "DNE", "ENR", "IAT",
    "MTE", "POP", "POS", "PPD", "RCK", "SHR", "TEL", "TRC", "TRX", "WEB", "XCK",
})
IAT_TRANSACTION_TYPES = frozenset({
    "ANN", "BUS", "DEP", "LOA", "MIS", "MOR", "PEN", "REM", "RLS", "SAL", "TAX",
    "ARC", "BOC", "MTE", "POP", "POS", "SHR", "TEL", "WEB",
})
# fmt: on
# Checking 2x, savings 3x, general ledger 4x, loan 5x; x = 1 return/NOC, 2 credit, 3 prenote,
# 4 zero-dollar, 6 return/NOC, 7 debit, 8 prenote, 9 zero-dollar. 55 is a loan reversal debit.
TRANSACTION_CODES = frozenset(
    {21, 22, 23, 24, 26, 27, 28, 29, 31, 32, 33, 34, 36, 37, 38, 39}
    | {41, 42, 43, 44, 46, 47, 48, 49, 51, 52, 53, 55, 56}
)
# ADV (accounting advice) entries: odd codes credit, even codes debit the receiving DFI.
ADV_TRANSACTION_CODES = frozenset(range(81, 89))
RETURN_CODES = frozenset(
    [f"R{n:02d}" for n in range(1, 54) if n not in (48, 49)]
    + ["R61", "R62"]
    + [f"R{n}" for n in range(67, 78)]
    + [f"R{n}" for n in range(80, 86)]
)
# Dishonored (R61-R70) and contested (R71-R77) returns lay out their addenda differently.
DISHONORED_RETURN_CODES = frozenset(c for c in RETURN_CODES if "R61" <= c <= "R77")
CHANGE_CODES = frozenset([f"C{n:02d}" for n in range(1, 15)] + [f"C{n}" for n in range(61, 70)])
# NACHA's alphameric fields take characters above hex 1F; the rest are control characters.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


class NachaError(ValueError):
    """A file, or a value to be written, that breaks the NACHA format.

    `line` is the 1-based record number, `field` names the field at fault and `value` holds its
    text (an account number is masked to its last four characters). `parse` sets `name`, which
    then leads the message.
    """

    def __init__(self, line: int, field: str, value: str, detail: str) -> None:
        super().__init__(line, field, value, detail)
        self.line = line
        self.field = field
        self.value = value
        self.detail = detail
        self.name = ""

    def __str__(self) -> str:
        where = f"{self.name}: " if self.name else ""
        return f"{where}line {self.line}, field '{self.field}': {self.detail}"


@dataclass(frozen=True, slots=True)
class NachaFinding:
    """A NACHA rule that a file breaks but that does not stop it being read (nacha.py says which).

    Its fields are a NachaError's, and so is its message; `parse` sets `name`.
    """

    line: int
    field: str
    value: str
    detail: str
    name: str = ""

    def __str__(self) -> str:
        where = f"{self.name}: " if self.name else ""
        return f"{where}line {self.line}, field '{self.field}': {self.detail}"

    def refusal(self) -> NachaError:
        """The same message as an error, for callers that accept no findings (the writer)."""
        error = NachaError(self.line, self.field, self.value, self.detail)
        error.name = self.name
        return error


def mask_account(account: str) -> str:
    """An account number reduced to what may be logged: its last four characters."""
    account = account.strip()
    return "*" * max(len(account) - 4, 0) + account[-4:]


def is_digits(text: str) -> bool:
    # str.isdigit alone accepts '²' and Arabic-Indic digits, which int() would then read.
    return text.isascii() and text.isdigit()


def check_digit(first8: str) -> str:
    """The ABA check digit of an 8-digit routing prefix (weights 3, 7, 1 repeating)."""
    if len(first8) != 8 or not is_digits(first8):
        raise ValueError(f"routing prefix {first8!r} is not 8 digits")
    d = [int(c) for c in first8]
    total = 3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5]
    return str(-total % 10)


def routing_checksum_ok(routing: str) -> bool:
    """Whether `routing` is 9 digits whose ABA weighted sum is a multiple of 10."""
    return len(routing) == 9 and is_digits(routing) and check_digit(routing[:8]) == routing[8]


def is_debit(transaction_code: int) -> bool:
    """Debit or credit by transaction code, as the batch and file totals count them."""
    if transaction_code in ADV_TRANSACTION_CODES:
        return transaction_code % 2 == 0
    return transaction_code % 10 >= 5


def is_zero_dollar(transaction_code: int) -> bool:
    """Prenotes (x3, x8) and zero-dollar entries (x4, x9) must carry an amount of zero."""
    return transaction_code not in ADV_TRANSACTION_CODES and transaction_code % 10 in (3, 4, 8, 9)


# Reading fields. Records reaching these are exactly 94 characters, so slices never fall short.


def digits(record: str, first: int, last: int, line: int, field: str) -> str:
    text = record[first - 1 : last]
    if not is_digits(text):
        raise NachaError(line, field, text, f"{text!r} is not numeric")
    return text


def number(record: str, first: int, last: int, line: int, field: str) -> int:
    return int(digits(record, first, last, line, field))


def alpha(record: str, first: int, last: int) -> str:
    """An alphameric field as written, without the blanks that fill it on the right."""
    return record[first - 1 : last].rstrip(" ")


def yymmdd(text: str, line: int, field: str) -> date:
    """A YYMMDD date; NACHA years are two digits, read as 20YY."""
    if is_digits(text):
        try:
            return date(2000 + int(text[:2]), int(text[2:4]), int(text[4:]))
        except ValueError:
            pass
    raise NachaError(line, field, text, f"{text!r} is not a valid YYMMDD date")


def find_control_character(record: str) -> str | None:
    found = _CONTROL_CHARACTER.search(record)
    return found.group() if found else None


# Writing fields: each refuses a value it cannot represent rather than cutting it down.


def put_number(value: int, width: int, line: int, field: str) -> str:
    if not 0 <= value < 10**width:
        raise NachaError(line, field, str(value), f"{value} does not fit in {width} digits")
    return f"{value:0{width}d}"


def put_digits(text: str, width: int, line: int, field: str) -> str:
    if len(text) != width or not is_digits(text):
        shown = mask_account(text) if field == "account_number" else text
        raise NachaError(line, field, shown, f"{shown!r} is not {width} digits")
    return text


def put_alpha(text: str, width: int, line: int, field: str) -> str:
    shown = mask_account(text) if field == "account_number" else text
    if len(text) > width:
        raise NachaError(line, field, shown, f"{shown!r} is longer than {width} characters")
    # Files leave here in plain ASCII, whatever banks send us: callers transliterate names.
    if not text.isascii() or find_control_character(text) is not None:
        raise NachaError(line, field, shown, f"{shown!r} is not printable ASCII")
    return text.ljust(width)


def put_yymmdd(value: date | None, line: int, field: str) -> str:
    if value is None:
        return " " * 6
    if not 2000 <= value.year <= 2099:
        raise NachaError(line, field, value.isoformat(), f"{value} is outside 2000-2099")
    return value.strftime("%y%m%d")


# The model. Alphameric fields hold the text without its right-hand blank fill; `raw` keeps the
# record as read, for the IAT and ADV fields not modelled here, and takes no part in equality.


@dataclass(frozen=True, slots=True)
class Addenda:
    """An addenda record ('7'). The record itself is the data; the fields below are views of it."""

    type_code: str
    raw: str

    def __post_init__(self) -> None:
        if len(self.raw) != RECORD_LENGTH or self.raw[:3] != "7" + self.type_code:
            raise ValueError(
                f"addenda record starting {self.raw[:3]!r} ({len(self.raw)} characters) is not"
                f" a {RECORD_LENGTH}-character '7{self.type_code}' record"
            )

    @classmethod
    def return_(
        cls,
        return_code: str,
        original_trace: str,
        original_rdfi: str,
        trace_number: str,
        info: str = "",
        date_of_death: str = "",
    ) -> Addenda:
        """A return addenda (99) for a return entry whose own trace number is `trace_number`."""
        if return_code not in RETURN_CODES:
            raise ValueError(f"return code {return_code!r} is not a NACHA return reason code")
        checks = ((original_trace, 15, "original_trace"), (original_rdfi, 8, "original_rdfi"))
        for text, width, name in (*checks, (trace_number, 15, "trace_number")):
            if len(text) != width or not is_digits(text):
                raise ValueError(f"{name} {text!r} is not {width} digits")
        if date_of_death and (len(date_of_death) != 6 or not is_digits(date_of_death)):
            raise ValueError(f"date_of_death {date_of_death!r} is not YYMMDD")
        if len(info) > 44 or not info.isascii() or find_control_character(info) is not None:
            raise ValueError(f"addenda information {info!r} is not up to 44 ASCII characters")
        raw = (
            f"799{return_code}{original_trace}{date_of_death:<6}{original_rdfi}{info:<44}"
            f"{trace_number}"
        )
        return cls("99", raw)

    @property
    def return_code(self) -> str:
        return self.raw[3:6] if self.type_code == "99" else ""

    @property
    def change_code(self) -> str:
        return self.raw[3:6] if self.type_code == "98" else ""

    @property
    def original_trace(self) -> str:
        return self.raw[6:21] if self.type_code in ("98", "99") else ""

    @property
    def date_of_death(self) -> str:
        return self.raw[21:27].strip() if self.type_code == "99" else ""

    @property
    def original_rdfi(self) -> str:
        return self.raw[27:35] if self.type_code in ("98", "99") else ""

    @property
    def addenda_information(self) -> str:
        return self.raw[35:79].rstrip(" ") if self.type_code == "99" else ""

    @property
    def trace_number(self) -> str:
        return self.raw[79:94] if self.type_code in ("02", "98", "99") else ""


@dataclass(frozen=True, slots=True)
class EntryDetail:
    """An entry detail record ('6') and its addenda. For IAT the account is the foreign one."""

    transaction_code: int
    rdfi_routing: str
    account_number: str = field(repr=False)
    amount_minor: int
    individual_id: str
    individual_name: str
    discretionary_data: str
    trace_number: str
    addenda: tuple[Addenda, ...] = ()
    raw: str = field(default="", compare=False, repr=False)

    @property
    def is_debit(self) -> bool:
        return is_debit(self.transaction_code)


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch: its header ('5'), entries and addenda. Its control ('8') is computed, not stored."""

    service_class_code: int
    company_name: str
    company_discretionary_data: str
    company_id: str
    sec_code: str
    entry_description: str
    descriptive_date: str
    effective_entry_date: date | None
    settlement_date: str
    originator_status_code: str
    odfi_id: str
    batch_number: int
    entries: tuple[EntryDetail, ...] = ()
    raw: str = field(default="", compare=False, repr=False)

    @property
    def entry_addenda_count(self) -> int:
        return len(self.entries) + sum(len(e.addenda) for e in self.entries)

    @property
    def entry_hash(self) -> int:
        """The sum of the entries' 8-digit RDFI ids, cut to its last 10 digits."""
        return sum(int(e.rdfi_routing[:8]) for e in self.entries) % 10**10

    @property
    def total_debit_minor(self) -> int:
        return sum(e.amount_minor for e in self.entries if is_debit(e.transaction_code))

    @property
    def total_credit_minor(self) -> int:
        return sum(e.amount_minor for e in self.entries if not is_debit(e.transaction_code))


@dataclass(frozen=True, slots=True)
class AchFile:
    """A whole ACH file. Control records, counts and padding are computed when written."""

    immediate_destination: str
    immediate_origin: str
    # None only in a file read without its file header (ReadOptions.allow_missing_file_header).
    creation_date: date | None
    creation_time: str
    file_id_modifier: str
    destination_name: str
    origin_name: str
    reference_code: str
    batches: tuple[Batch, ...] = ()
    # What the file as read breaks without being unreadable; the model does not depend on them.
    findings: tuple[NachaFinding, ...] = field(default=(), compare=False)

    @property
    def entry_addenda_count(self) -> int:
        return sum(b.entry_addenda_count for b in self.batches)

    @property
    def entry_hash(self) -> int:
        return sum(b.entry_hash for b in self.batches) % 10**10

    @property
    def total_debit_minor(self) -> int:
        return sum(b.total_debit_minor for b in self.batches)

    @property
    def total_credit_minor(self) -> int:
        return sum(b.total_credit_minor for b in self.batches)

    @property
    def record_count(self) -> int:
        """Records before padding: the two file records, two per batch, entries and addenda."""
        return 2 + 2 * len(self.batches) + self.entry_addenda_count

    @property
    def block_count(self) -> int:
        return -(-self.record_count // BLOCKING_FACTOR)


# Reading single records into the model. The structure around them is checked in nacha.py.

IAT, ADV, STANDARD = "IAT", "ADV", "standard"
_ADDENDA_TYPES = {
    STANDARD: frozenset({"02", "05", "98", "99"}),
    IAT: frozenset({"10", "11", "12", "13", "14", "15", "16", "17", "18", "98", "99"}),
    ADV: frozenset({"99"}),
}
FILE_ID_MODIFIERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _fail(line: int, field: str, value: str, detail: str) -> NachaError:
    return NachaError(line, field, value, f"{value!r} {detail}")


def _mandatory(
    record: str, first: int, last: int, line: int, field: str, notes: list[NachaFinding]
) -> str:
    """A mandatory header field. Blank is absent, not unreadable: every entry can still be read
    without it, so a blank one is a finding and reads as ''."""
    text = alpha(record, first, last)
    if not text:
        blank = record[first - 1 : last]
        notes.append(
            NachaFinding(line, field, blank, f"{blank!r} is blank, and the field is mandatory")
        )
    return text


def _routing_text(record: str, first: int, last: int, field: str, notes: list[NachaFinding]) -> str:
    text = _mandatory(record, first, last, 1, field, notes).strip(" ")
    if text and (len(text) not in (9, 10) or not is_digits(text)):
        raise _fail(
            1, field, record[first - 1 : last], "is not a routing number or a 10-digit identifier"
        )
    return text


def read_file_header(record: str, notes: list[NachaFinding]) -> AchFile:
    digits(record, 2, 3, 1, "priority_code")
    time = record[29:33]
    if time != "    " and not (is_digits(time) and time[:2] < "24" and time[2:] < "60"):
        raise _fail(1, "creation_time", time, "is not a time HHMM")
    # A blank modifier breaks the rule, but FISERV sends it (on empty files at least).
    if record[33] not in FILE_ID_MODIFIERS and record[33] != " ":
        raise _fail(1, "file_id_modifier", record[33], "is not A-Z or 0-9")
    fixed = (
        (35, 37, "record_size", "094"),
        (38, 39, "blocking_factor", "10"),
        (40, 40, "format", "1"),
    )
    for first, last, name, expected in fixed:
        if record[first - 1 : last] != expected:
            raise _fail(1, name, record[first - 1 : last], f"should be {expected!r}")
    return AchFile(
        immediate_destination=_routing_text(record, 4, 13, "immediate_destination", notes),
        immediate_origin=_routing_text(record, 14, 23, "immediate_origin", notes),
        creation_date=yymmdd(record[23:29], 1, "creation_date"),
        creation_time=time.strip(" "),
        file_id_modifier=record[33].strip(" "),
        destination_name=alpha(record, 41, 63),
        origin_name=alpha(record, 64, 86),
        reference_code=alpha(record, 87, 94),
    )


def batch_layout(record: str) -> str:
    """IAT batches (and IAT notifications of change) have their own header and entry layout."""
    sec = record[50:53]
    if sec == "IAT" or (sec == "COR" and record[4:20].rstrip(" ") == "IATCOR"):
        return IAT
    return ADV if sec == ADV else STANDARD


def read_batch_header(record: str, line: int, layout: str, notes: list[NachaFinding]) -> Batch:
    service_class = number(record, 2, 4, line, "service_class_code")
    if service_class not in SERVICE_CLASSES:
        raise _fail(line, "service_class_code", record[1:4], "is not 200, 220, 225 or 280")
    sec = record[50:53]
    if sec not in SEC_CODES:
        raise _fail(line, "sec_code", sec, "is not a standard entry class code")
    if (layout == ADV) != (service_class == 280):
        raise _fail(line, "service_class_code", record[1:4], f"does not go with SEC code {sec}")
    if layout == IAT and record[20:22] not in ("FF", "FV", "VF"):
        raise _fail(line, "foreign_exchange_indicator", record[20:22], "is not FF, FV or VF")
    settlement = record[75:78]
    # The ACH operator fills this in; originators leave it blank, or zero (moov-io, and banks).
    if settlement not in ("   ", "000") and not (is_digits(settlement) and settlement <= "366"):
        raise _fail(line, "settlement_date", settlement, "is neither blank nor a julian day")
    if record[78] not in "012":
        raise _fail(line, "originator_status_code", record[78], "is not 0, 1 or 2")
    return Batch(
        service_class_code=service_class,
        company_name=""
        if layout == IAT
        else _mandatory(record, 5, 20, line, "company_name", notes),
        company_discretionary_data="" if layout == IAT else alpha(record, 21, 40),
        company_id=_mandatory(record, 41, 50, line, "company_id", notes),
        sec_code=sec,
        entry_description=_mandatory(record, 54, 63, line, "entry_description", notes),
        descriptive_date="" if layout == IAT else alpha(record, 64, 69),
        effective_entry_date=_effective_date(record, line, notes),
        settlement_date=settlement.strip(" "),
        originator_status_code=record[78],
        odfi_id=digits(record, 80, 87, line, "odfi_id"),
        batch_number=number(record, 88, 94, line, "batch_number"),
        raw=record,
    )


def _effective_date(record: str, line: int, notes: list[NachaFinding]) -> date | None:
    text = record[69:75]
    # Blank or zero effective dates come back on returns and NOCs from real banks.
    if text in ("      ", "000000"):
        return None
    try:
        return yymmdd(text, line, "effective_entry_date")
    except NachaError as err:
        # The day the originator asked for, which the operator's settlement date overrides: one
        # that cannot be read is read as none at all, like a blank one, and reported.
        notes.append(NachaFinding(line, err.field, err.value, err.detail))
        return None


class EntryFields(NamedTuple):
    """An entry's fields, read before its addenda so that the entry is built once, whole."""

    transaction_code: int
    rdfi_routing: str
    account_number: str
    amount_minor: int
    individual_id: str
    individual_name: str
    discretionary_data: str
    trace_number: str


def read_entry(record: str, line: int, layout: str) -> EntryFields:
    code = number(record, 2, 3, line, "transaction_code")
    if code not in (ADV_TRANSACTION_CODES if layout == ADV else TRANSACTION_CODES):
        known = "an ADV transaction code (81-88)" if layout == ADV else "a NACHA transaction code"
        raise _fail(line, "transaction_code", record[1:3], f"is not {known}")
    routing = digits(record, 4, 12, line, "rdfi_routing")
    if not routing_checksum_ok(routing):
        detail = f"fails its check digit, which would be {check_digit(routing[:8])}"
        raise _fail(line, "rdfi_routing", routing, detail)
    if record[78] not in "01":
        raise _fail(line, "addenda_indicator", record[78], "is not 0 or 1")
    if layout == ADV:
        digits(record, 40, 48, line, "advice_routing")
        account, amount = alpha(record, 13, 27), number(record, 28, 39, line, "amount")
    elif layout == IAT:
        account, amount = alpha(record, 40, 74), number(record, 30, 39, line, "amount")
    else:
        account, amount = alpha(record, 13, 29), number(record, 30, 39, line, "amount")
    if not account:
        raise _fail(line, "account_number", "", "is blank, and the field is mandatory")
    if amount and is_zero_dollar(code):
        raise _fail(line, "amount", str(amount), f"must be zero for transaction code {code}")
    return EntryFields(
        code,
        routing,
        account,
        amount,
        alpha(record, 40, 54) if layout == STANDARD else "",
        "" if layout == IAT else alpha(record, 55, 76),
        "" if layout == IAT else alpha(record, 77, 78),
        digits(record, 80, 94, line, "trace_number"),
    )


def read_addenda(
    record: str, line: int, layout: str, sec: str, options: ReadOptions, notes: list[NachaFinding]
) -> Addenda:
    type_code = record[1:3]
    if type_code not in _ADDENDA_TYPES[layout]:
        raise _fail(line, "type_code", type_code, f"is not an addenda type of {sec} entries")
    if type_code == "02" and sec not in ("POS", "SHR", "MTE"):
        raise _fail(line, "type_code", type_code, f"is for POS, SHR and MTE entries, not {sec}")
    if type_code == "98" and sec != "COR":
        raise _fail(line, "type_code", type_code, f"is for COR entries, not {sec}")
    if type_code in ("98", "99"):
        _check_return_or_change(record, line, options, notes)
    if type_code == "10" and record[3:6] not in IAT_TRANSACTION_TYPES:
        raise _fail(line, "transaction_type_code", record[3:6], "is not an IAT transaction type")
    return Addenda(type_code, record)


def _check_return_or_change(
    record: str, line: int, options: ReadOptions, notes: list[NachaFinding]
) -> None:
    code = record[3:6]
    if record[1:3] == "98" and code not in CHANGE_CODES:
        raise _fail(line, "change_code", code, "is not a NACHA change code")
    if record[1:3] == "99" and code not in RETURN_CODES:
        if not (options.custom_return_codes and CUSTOM_RETURN_CODE.fullmatch(code)):
            raise _fail(line, "return_code", code, "is not a NACHA return reason code")
        detail = f"{code!r} is not a NACHA return reason code: read as the bank's own code"
        notes.append(NachaFinding(line, "return_code", code, f"{detail} (custom_return_codes)"))
    digits(record, 7, 21, line, "original_trace")
    digits(record, 28, 35, line, "original_rdfi")
    death = record[21:27]
    if record[1:3] == "99" and code not in DISHONORED_RETURN_CODES and death != "      ":
        yymmdd(death, line, "date_of_death")
