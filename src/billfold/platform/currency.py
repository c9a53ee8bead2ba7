"""The currency every wallet holds. The ledger keeps accounts in any currency; the service opens
wallets, moves money and reads history in this one. Every context names it by this constant,
so that a second currency is a change made here and followed from its uses."""

from __future__ import annotations

WALLET_CURRENCY = "USD"

# ISO 4217 minor units of the currencies Billfold serves; the rest have two.
MINOR_UNITS = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KWD": 3}


def minor_units(currency: str) -> int:
    return MINOR_UNITS.get(currency, 2)


def format_amount(minor: int, currency: str) -> str:
    """Minor units as a decimal string with the currency's places: 5000 USD -> '50.00'."""
    places = minor_units(currency)
    if places == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, part = divmod(abs(minor), 10**places)
    return f"{sign}{whole}.{part:0{places}d}"


def places_sql(column: str) -> str:
    """A SQL expression of `column`'s (a currency code) minor units, as minor_units says."""
    odd = " ".join(f"WHEN '{c}' THEN {p}" for c, p in MINOR_UNITS.items() if p != 2)
    return f"(CASE {column} {odd} ELSE 2 END)"
