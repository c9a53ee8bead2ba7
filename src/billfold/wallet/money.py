"""Amounts at the API edge: decimal strings or JSON numbers in, integer minor units inside.

One parser (parse_amount) and one grammar (amount_pattern) for every amount the API reads."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from billfold.ledger.model import MAX_AMOUNT_MINOR
from billfold.platform.currency import minor_units
from billfold.platform.errors import BillfoldError


class InvalidAmount(BillfoldError):
    code = "invalid_amount"
    status = 422
    title = "Invalid amount"


# At most this many characters: a longer amount is refused before any arithmetic (Python
# refuses to convert more than 4,300 digits, and Decimal's context overflows far sooner).
MAX_AMOUNT_CHARS = 24


def amount_pattern(currency: str) -> str:
    """The one grammar of an amount in `currency`, as the pattern the OpenAPI document gives:
    ASCII digits, then at most the currency's decimal places after one '.'; no sign, exponent,
    separator, space or other digits. An amount is more than zero and at most
    MAX_AMOUNT_MINOR (a power of ten): what parse_amount accepts."""
    places = minor_units(currency)
    most = MAX_AMOUNT_MINOR // 10**places
    decimals = rf"(\.[0-9]{{1,{places}}})?" if places else ""
    # A whole part of 1 up to `most`, less one, with any decimals; `most` itself, with zeros.
    branches = [rf"0*[1-9][0-9]{{0,{len(str(most)) - 2}}}{decimals}"]
    branches.append(f"0*{most}" + (rf"(\.0{{1,{places}}})?" if places else ""))
    if places:
        # Less than one: some decimal not zero (the first that is not at `first`).
        cents = [
            "0" * first
            + "[1-9]"
            + (f"[0-9]{{0,{places - 1 - first}}}" if first < places - 1 else "")
            for first in range(places)
        ]
        branches.append(rf"0+\.({'|'.join(cents)})")
    return f"^({'|'.join(branches)})$"


def amount_schema(currency: str) -> dict[str, Any]:
    """The OpenAPI schema of an amount field: a string in the grammar, or a whole number (a
    JSON number with decimals, written in the grammar, is read too)."""
    places = minor_units(currency)
    return {
        "anyOf": [
            {"type": "string", "pattern": amount_pattern(currency), "maxLength": MAX_AMOUNT_CHARS},
            {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT_MINOR // 10**places},
        ]
    }


_WRITTEN = re.compile(r"[0-9]+(?:\.([0-9]+))?")


def parse_amount(value: object, currency: str, field: str = "amount") -> int:
    """An amount in `currency` as minor units: a string in the grammar of `amount_pattern`
    ('50.00', '50', '0.5') or a JSON number written the same way (50, 0.5; parsed by
    platform.strict as int or Decimal, so 1E+2 is seen as written). Anything else is refused
    with `invalid_amount`, naming the value."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        shown = f"<{type(value).__name__}>" if isinstance(value, list | dict) else str(value)
        raise InvalidAmount(f"{field} '{shown[:40]}' is not a number", field=field)
    text = value if isinstance(value, str) else _written(value)
    if len(text) > MAX_AMOUNT_CHARS:
        raise InvalidAmount(
            f"{field} '{text[:MAX_AMOUNT_CHARS]}...' is longer than {MAX_AMOUNT_CHARS} characters",
            field=field,
        )
    written = _WRITTEN.fullmatch(text)
    if written is None:
        raise InvalidAmount(
            f"{field} {text!r} is not a plain decimal amount: ASCII digits with at most one"
            " '.', like '12.50' (no sign, exponent, separator or space)",
            field=field,
        )
    places = minor_units(currency)
    if len(written.group(1) or "") > places:
        raise InvalidAmount(
            f"{field} '{text}' has more than {places} decimal places for {currency}",
            field=field,
        )
    whole, _, part = text.partition(".")
    minor = int(whole + part.ljust(places, "0"))
    if minor <= 0:
        raise InvalidAmount(f"{field} '{text}' must be greater than zero", field=field)
    if minor > MAX_AMOUNT_MINOR:
        raise InvalidAmount(f"{field} '{text}' is too large", field=field)
    return minor


def _written(number: int | float | Decimal) -> str:
    """A JSON number as it was written: an int's digits, a Decimal's own text (platform.strict
    keeps it), and for a float (a caller in Python) its shortest repr."""
    return repr(number) if isinstance(number, float) else str(number)
