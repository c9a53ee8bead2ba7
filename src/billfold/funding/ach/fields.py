"""NACHA fields and single records: each field read or written, and each record read into the
model (records.py). The structure around a record is checked in read.py. Positions
are NACHA's own, 1-based and inclusive as the Operating Rules print them.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import NamedTuple

from billfold.funding.ach.options import CUSTOM_RETURN_CODE, ReadOptions
from billfold.funding.ach.records import (
    ADV_TRANSACTION_CODES,
    CHANGE_CODES,
    DISHONORED_RETURN_CODES,
    IAT_TRANSACTION_TYPES,
    RETURN_CODES,
    SEC_CODES,
    SERVICE_CLASSES,
    TRANSACTION_CODES,
    AchFile,
    Addenda,
    Batch,
    NachaError,
    NachaFinding,
    check_digit,
    find_control_character,
    is_digits,
    is_zero_dollar,
    mask_account,
    routing_checksum_ok,
)

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


def nacha_name(text: str, width: int) -> str:
    """A person's name as a NACHA name field can carry it: letters without their accents
    ("José Núñez" -> "JOSE NUNEZ"), upper case, any other character outside printable ASCII a
    space, at most `width` characters. A name is what the person typed at linking; one the file
    cannot carry as typed must not stop the day's file."""
    plain = unicodedata.normalize("NFKD", text)
    kept = "".join(c if " " <= c <= "~" else " " for c in plain if not unicodedata.combining(c))
    return " ".join(kept.upper().split())[:width]


def put_yymmdd(value: date | None, line: int, field: str) -> str:
    if value is None:
        return " " * 6
    if not 2000 <= value.year <= 2099:
        raise NachaError(line, field, value.isoformat(), f"{value} is outside 2000-2099")
    return value.strftime("%y%m%d")


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
