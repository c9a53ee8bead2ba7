"""The amount grammar the OpenAPI document states is the one parse_amount accepts."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billfold.wallet.money import (
    MAX_AMOUNT_CHARS,
    InvalidAmount,
    amount_pattern,
    amount_schema,
    parse_amount,
)

CURRENCIES = ["USD", "JPY", "KWD"]
# Near the edges the grammar draws: zero, the largest amount, places, leading zeros.
EDGES = [
    "0", "00", "0.0", "0.00", "0.000", ".5", "5.", "0.01", "0.001", "00.10", "007", "1",
    "9999999999999.99", "10000000000000", "10000000000000.00", "10000000000000.01",
    "10000000000001", "999999999999999", "1000000000000000", "1000000000000001",
    "1000000000000.000", "1000000000000.001",
]  # fmt: skip


def accepted(text: str, currency: str) -> bool:
    try:
        parse_amount(text, currency)
    except InvalidAmount:
        return False
    return True


def matches(text: str, currency: str) -> bool:
    pattern = amount_schema(currency)["anyOf"][0]
    return len(text) <= pattern["maxLength"] and re.fullmatch(pattern["pattern"], text) is not None


@pytest.mark.parametrize("currency", CURRENCIES)
@pytest.mark.parametrize("text", EDGES)
def test_the_pattern_and_the_parser_agree_at_the_edges(text: str, currency: str) -> None:
    assert matches(text, currency) == accepted(text, currency), (text, currency)


@pytest.mark.parametrize("currency", CURRENCIES)
@given(text=st.text(alphabet="0123456789.", max_size=MAX_AMOUNT_CHARS + 2))
def test_the_pattern_and_the_parser_agree_on_any_digits(text: str, currency: str) -> None:
    """Zero, too many places, too large: refused by both; the rest accepted by both."""
    assert matches(text, currency) == accepted(text, currency), (text, currency)


@given(text=st.from_regex(amount_pattern("USD"), fullmatch=True))
def test_what_the_pattern_describes_is_an_amount(text: str) -> None:
    """A client that writes what the document describes is never refused for its amount."""
    if len(text) <= MAX_AMOUNT_CHARS:
        assert parse_amount(text, "USD") > 0


def test_a_number_amount_is_a_whole_number_in_range() -> None:
    number = amount_schema("USD")["anyOf"][1]
    assert parse_amount(number["minimum"], "USD") == 100
    assert parse_amount(number["maximum"], "USD") == 10**15
