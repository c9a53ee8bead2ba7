"""The NACHA file model, its error and its code tables.

fields.py reads and writes one record at a time, read.py checks how records fit
together, and nacha.py writes files. Positions are NACHA's own, 1-based and inclusive as the
Operating Rules print them, so a layout can be checked against the rule book by eye.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

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


def find_control_character(record: str) -> str | None:
    found = _CONTROL_CHARACTER.search(record)
    return found.group() if found else None


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
