"""Banking days against the Federal Reserve's published holiday schedules, written out by hand."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billfold.funding.ach.calendar import (
    MAX_BANKING_DAYS,
    add_banking_days,
    banking_days_between,
    fed_holidays,
    is_banking_day,
    next_banking_day,
)

any_dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
banking_dates = any_dates.filter(is_banking_day)
banking_day_counts = st.integers(min_value=0, max_value=MAX_BANKING_DAYS)


def test_fed_holidays_2024() -> None:
    """2024 matches the Fed's schedule; no holiday falls on a weekend."""
    assert fed_holidays(2024) == {
        date(2024, 1, 1),
        date(2024, 1, 15),
        date(2024, 2, 19),
        date(2024, 5, 27),
        date(2024, 6, 19),
        date(2024, 7, 4),
        date(2024, 9, 2),
        date(2024, 10, 14),
        date(2024, 11, 11),
        date(2024, 11, 28),
        date(2024, 12, 25),
    }


def test_fed_holidays_2025() -> None:
    """2025 matches the Fed's schedule; no holiday falls on a weekend."""
    assert fed_holidays(2025) == {
        date(2025, 1, 1),
        date(2025, 1, 20),
        date(2025, 2, 17),
        date(2025, 5, 26),
        date(2025, 6, 19),
        date(2025, 7, 4),
        date(2025, 9, 1),
        date(2025, 10, 13),
        date(2025, 11, 11),
        date(2025, 11, 27),
        date(2025, 12, 25),
    }


def test_fed_holidays_2026() -> None:
    """2026 matches the Fed's schedule: Independence Day on Saturday Jul 4 is not moved."""
    assert fed_holidays(2026) == {
        date(2026, 1, 1),
        date(2026, 1, 19),
        date(2026, 2, 16),
        date(2026, 5, 25),
        date(2026, 6, 19),
        date(2026, 7, 4),
        date(2026, 9, 7),
        date(2026, 10, 12),
        date(2026, 11, 11),
        date(2026, 11, 26),
        date(2026, 12, 25),
    }
    assert is_banking_day(date(2026, 7, 3))


def test_fed_holidays_2027() -> None:
    """2027 matches the Fed's schedule: Sat Jun 19 and Dec 25 stay, Sun Jul 4 moves to Mon Jul 5."""
    assert fed_holidays(2027) == {
        date(2027, 1, 1),
        date(2027, 1, 18),
        date(2027, 2, 15),
        date(2027, 5, 31),
        date(2027, 6, 19),
        date(2027, 7, 5),
        date(2027, 9, 6),
        date(2027, 10, 11),
        date(2027, 11, 11),
        date(2027, 11, 25),
        date(2027, 12, 25),
    }
    assert is_banking_day(date(2027, 6, 18))
    assert not is_banking_day(date(2027, 7, 5))
    assert is_banking_day(date(2027, 12, 24))


def test_saturday_new_year_is_not_moved_into_the_year_before() -> None:
    """New Year's Day 2028 falls on a Saturday, so Friday Dec 31 2027 is a banking day."""
    assert date(2028, 1, 1) in fed_holidays(2028)
    assert date(2027, 12, 31) not in fed_holidays(2027)
    assert is_banking_day(date(2027, 12, 31))
    assert next_banking_day(date(2027, 12, 31)) == date(2028, 1, 3)


def test_juneteenth_is_observed_from_2022() -> None:
    """The Fed stayed open for Juneteenth 2021 and first closed for it on Monday Jun 20 2022."""
    assert date(2021, 6, 19) not in fed_holidays(2021)
    assert is_banking_day(date(2021, 6, 18))
    assert date(2022, 6, 20) in fed_holidays(2022)
    assert not is_banking_day(date(2022, 6, 20))


def test_thanksgiving_weekend() -> None:
    """The Wednesday before Thanksgiving plus one banking day is the Friday after it."""
    assert add_banking_days(date(2025, 11, 26), 1) == date(2025, 11, 28)
    assert add_banking_days(date(2025, 11, 26), 2) == date(2025, 12, 1)
    assert banking_days_between(date(2025, 11, 26), date(2025, 12, 1)) == 2


def test_friday_plus_one_is_monday() -> None:
    """An ordinary Friday plus one banking day is the Monday after it."""
    assert add_banking_days(date(2026, 3, 6), 1) == date(2026, 3, 9)
    assert banking_days_between(date(2026, 3, 6), date(2026, 3, 9)) == 1


def test_over_a_sunday_holiday() -> None:
    """Independence Day 2027 is on Sunday, so Friday Jul 2 plus one banking day is Tuesday Jul 6."""
    assert add_banking_days(date(2027, 7, 2), 1) == date(2027, 7, 6)
    assert banking_days_between(date(2027, 7, 2), date(2027, 7, 6)) == 1


def test_zero_days_from_a_banking_day_and_from_a_weekend() -> None:
    """n == 0 keeps a banking day and moves a weekend day to the next banking day."""
    assert add_banking_days(date(2026, 3, 6), 0) == date(2026, 3, 6)
    assert add_banking_days(date(2026, 3, 7), 0) == date(2026, 3, 9)
    assert add_banking_days(date(2026, 3, 7), 1) == date(2026, 3, 9)


def test_counts_out_of_range_are_refused() -> None:
    """A negative n, an n over the limit and a reversed span raise ValueError naming the value."""
    with pytest.raises(ValueError, match="'-1'"):
        add_banking_days(date(2026, 3, 6), -1)
    with pytest.raises(ValueError, match=f"'{MAX_BANKING_DAYS + 1}'"):
        add_banking_days(date(2026, 3, 6), MAX_BANKING_DAYS + 1)
    with pytest.raises(ValueError, match="'2026-03-05'"):
        banking_days_between(date(2026, 3, 6), date(2026, 3, 5))
    with pytest.raises(ValueError, match="'2060-01-01'"):
        banking_days_between(date(2026, 1, 1), date(2060, 1, 1))


@settings(max_examples=200, deadline=None)
@given(d=any_dates, n=banking_day_counts)
def test_add_banking_days_lands_on_a_banking_day(d: date, n: int) -> None:
    """From any day, adding any allowed number of banking days lands on a banking day."""
    assert is_banking_day(add_banking_days(d, n))


@settings(max_examples=200, deadline=None)
@given(d=banking_dates, n=banking_day_counts)
def test_banking_days_between_inverts_add_banking_days(d: date, n: int) -> None:
    """From a banking day, counting the banking days up to d + n banking days gives back n."""
    assert banking_days_between(d, add_banking_days(d, n)) == n
