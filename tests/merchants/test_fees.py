"""The merchant fee (merchants.fees) against a model in exact fractions: the rate rounded half
up, plus the fixed part, and never as much as the price."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billfold.ledger.model import MAX_AMOUNT_MINOR
from billfold.merchants.fees import merchant_fee_minor

amounts = st.integers(min_value=1, max_value=MAX_AMOUNT_MINOR)
rates = st.integers(min_value=0, max_value=10_000)
fixed = st.integers(min_value=0, max_value=10_000)


def model(amount: int, bps: int, fixed_minor: int) -> int:
    share = Fraction(amount * bps, 10_000)
    rounded = int(share) + (1 if share - int(share) >= Fraction(1, 2) else 0)
    return min(rounded + fixed_minor, amount - 1)


@given(amounts, rates, fixed)
def test_the_fee_is_below_the_price_and_the_three_legs_balance(
    amount: int, bps: int, fixed_minor: int
) -> None:
    """0 <= fee < amount: the merchant is paid something, the payer never more than the price;
    what the merchant gets and the fee sum to the price; it is the model's fee."""
    fee = merchant_fee_minor(amount, bps, fixed_minor)
    assert 0 <= fee < amount
    merchant = amount - fee
    assert merchant > 0 and merchant + fee == amount
    assert fee == model(amount, bps, fixed_minor)


@pytest.mark.parametrize(
    ("amount", "fee"),
    [(1, 0), (10, 9), (11, 10), (100, 12), (1_000, 29), (2_50, 15), (1_000_00, 1_910)],
)
def test_the_default_fee_at_chosen_amounts(amount: int, fee: int) -> None:
    """190 bps and 10 cents: $10.00 pays 29 cents (19 + 10); a cent or a dime keeps a cent."""
    assert merchant_fee_minor(amount, 190, 10) == fee


def test_half_a_cent_rounds_up() -> None:
    """50 bps of $1.01 is 0.505 cents: 1 cent; of $0.99 it is 0.495: none."""
    assert merchant_fee_minor(1_01, 50, 0) == 1
    assert merchant_fee_minor(99, 50, 0) == 0
