"""What a client sends, read strictly: text PostgreSQL can store, JSON that says one thing, and
moments inside the range the service can compute with.

Each refusal is a 422 `validation_error` naming the field and showing the value (escaped: a
NUL or a lone surrogate shows as `\\x00` or `\\ud800`), never the 500 that the value would
become further in: PostgreSQL refuses text holding a NUL, a lone surrogate cannot be encoded
as UTF-8 (for the database, a log line or a response), and a moment past year 9999 cannot be
converted to UTC.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billfold.platform.errors import ValidationFailed

# A JSON number longer than this is refused before it is converted: Python refuses to turn
# more than 4,300 digits into an int, and no field of the API needs 40.
MAX_NUMBER_CHARS = 40
# Values are shown in an error's detail cut to this many characters.
SHOWN_CHARS = 40
_SURROGATE = re.compile("[\ud800-\udfff]")
# Never echoed back or logged, whatever is wrong with them: card and bank account numbers,
# CVCs, secrets (a device token is one: with the access token, it makes a request look like
# the user's own).
SECRET_FIELDS = frozenset(
    {
        "account_number",
        "number",
        "cvc",
        "password",
        "pin",
        "current_pin",
        "token",
        "x-device-id",
        # The web app's forms (web/settings.py).
        "pin_again",
        "current_password",
        "new_password",
        "new_password_again",
    }
)


def shown(value: str, field: str = "") -> str:
    """`value` quoted for an error's detail: cut short, unprintable characters escaped; a
    secret field's value (the last part of a dotted `field`) not at all."""
    if field.rpartition(".")[2] in SECRET_FIELDS:
        return "[redacted]"
    return repr(value[:SHOWN_CHARS])


def check_text(value: str, field: str) -> None:
    """Refuse text that cannot be stored or encoded: a NUL character or a lone surrogate."""
    if "\x00" in value:
        raise ValidationFailed(
            f"{field} {shown(value, field)}: must not contain a NUL character", field=field
        )
    if not value.isascii() and _SURROGATE.search(value):
        raise ValidationFailed(
            f"{field} {shown(value, field)}: must not contain a lone surrogate (half of a"
            " UTF-16 pair, which has no UTF-8 form)",
            field=field,
        )


def ascii_digits(text: str, max_digits: int) -> bool:
    """Whether `text` is 1 to `max_digits` ASCII digits: str.isdigit() is true of a superscript
    two (which int() refuses) and of other scripts' digits (which int() reads as a number)."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def loads(body: bytes) -> Any:
    """A JSON document that means one thing, or a 422 naming what is wrong with it.

    UTF-8 only; an object's key at most once (a body that says two amounts is refused rather
    than read as its last); no NaN or Infinity; numbers at most MAX_NUMBER_CHARS long, a
    number with a fraction or exponent as the exact Decimal it writes (so that an amount parser
    sees '1E+2' as written, not 100.0); no NUL or lone surrogate in any key or string."""
    try:
        text = body.decode("utf-8")
        value = _DECODER.decode(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        why = _why(error)
        raise ValidationFailed(
            f"body: is not valid JSON ({why})", field="body", error=why
        ) from None
    # After strict UTF-8 decoding, a NUL or a lone surrogate can only come from a \u escape.
    if "\\u" in text:
        _check_strings(value, "body")
    return value


def to_utc(moment: datetime, field: str, raw: str) -> datetime:
    """`moment` in UTC (naive means UTC already); 422 naming `raw` if UTC has no such moment
    (0001-01-01T00:00+05:00 is in year 0, 9999-12-31T23:00-05:00 in year 10000)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise _out_of_range(field, raw) from None


def _out_of_range(field: str, raw: str) -> ValidationFailed:
    return ValidationFailed(
        f"{field} {shown(raw)} is outside the moments this API can represent "
        f"({datetime.min.date().isoformat()} to {datetime.max.date().isoformat()} UTC)",
        field=field,
    )


def _why(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return f"not UTF-8 at byte {error.start}"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    assert isinstance(error, json.JSONDecodeError)
    return f"{error.msg} at line {error.lineno} column {error.colno}"


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) == len(pairs):
        return value
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValidationFailed(
                f"{shown(key)} appears more than once in a JSON object; give each field once",
                field=key if key.isprintable() else shown(key),
            )
        seen.add(key)
    raise AssertionError("a key was lost without a duplicate")


def _integer(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _too_long(text)
    return int(text)


def _decimal(text: str) -> Decimal:
    if len(text) > MAX_NUMBER_CHARS:
        raise _too_long(text)
    return Decimal(text)


def _constant(text: str) -> Any:
    raise ValidationFailed(f"{text} is not a JSON number", field="body")


def _too_long(text: str) -> ValidationFailed:
    return ValidationFailed(
        f"number {text[:SHOWN_CHARS]}... is longer than {MAX_NUMBER_CHARS} characters",
        field="body",
    )


def _check_strings(document: Any, field: str) -> None:
    """check_text on every key and string of a parsed document (iteratively: the parser has
    bounded its depth already, but a walk needs no stack of its own)."""
    pending: list[tuple[tuple[str, ...], Any]] = [((), document)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            check_text(value, ".".join(path) or field)
        elif isinstance(value, dict):
            for key, item in value.items():
                check_text(key, ".".join(path) or field)
                pending.append(((*path, key), item))
        elif isinstance(value, list):
            pending.extend(((*path, str(i)), item) for i, item in enumerate(value))


# One decoder, made once: json.loads with hooks makes a new one on every call.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_keys,
    parse_int=_integer,
    parse_float=_decimal,
    parse_constant=_constant,
)
