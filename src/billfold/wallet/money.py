"""Amounts at the API edge: decimal strings or JSON numbers in, integer minor units inside."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from billfold.ledger.model import MAX_AMOUNT_MINOR
from billfold.platform.errors import BillfoldError

# ISO 4217 minor units of the currencies Billfold serves; the rest have two.
MINOR_UNITS = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KWD": 3}


class InvalidAmount(BillfoldError):
    code = "invalid_amount"
    status = 422
    title = "Invalid amount"


def minor_units(currency: str) -> int:
    return MINOR_UNITS.get(currency, 2)


def parse_amount(value: object, currency: str) -> int:
    """'50.00', '50', 50 or 50.5 in `currency` as minor units; refuse anything else, naming it."""
    shown = str(value)[:40]
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise InvalidAmount(f"amount '{shown}' is not a number", field="amount")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidAmount(f"amount '{shown}' is not a number", field="amount") from None
    if not amount.is_finite():
        raise InvalidAmount(f"amount '{shown}' is not a finite number", field="amount")
    places = minor_units(currency)
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise InvalidAmount(
            f"amount '{shown}' has more than {places} decimal places for {currency}",
            field="amount",
        )
    minor = int(amount.scaleb(places))
    if minor <= 0:
        raise InvalidAmount(f"amount '{shown}' must be greater than zero", field="amount")
    if minor > MAX_AMOUNT_MINOR:
        raise InvalidAmount(f"amount '{shown}' is too large", field="amount")
    return minor


def format_amount(minor: int, currency: str) -> str:
    """Minor units as a decimal string with the currency's places: 5000 USD -> '50.00'."""
    places = minor_units(currency)
    if places == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, part = divmod(abs(minor), 10**places)
    return f"{sign}{whole}.{part:0{places}d}"
