"""The fee a merchant pays on a payment: out of the price, never on top of it."""

from __future__ import annotations

BPS_DIVISOR = 10_000


def merchant_fee_minor(amount_minor: int, bps: int, fixed_minor: int) -> int:
    """`bps` basis points of the amount, rounded half up, plus `fixed_minor`; capped at one
    minor unit below the amount, so that the merchant is always paid something and the payer
    never pays more than the price (0 <= fee < amount). Integer arithmetic only."""
    if amount_minor <= 0:
        raise ValueError(f"amount {amount_minor} must be positive")
    if bps < 0 or fixed_minor < 0:
        raise ValueError("a fee's parts are not negative")
    share = (amount_minor * bps + BPS_DIVISOR // 2) // BPS_DIVISOR
    return min(share + fixed_minor, amount_minor - 1)
