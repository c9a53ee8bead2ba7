"""Banking days for ACH: the days the Federal Reserve Banks settle, and arithmetic over them.

FedACH settles only on days the Federal Reserve Banks are open, so an ACH effective date, a return
deadline or a funds-availability date is counted in these days, not in calendar days. The rules are
the Fed's standard holiday schedule; the Fed has also closed on unscheduled days in the past, and
those cannot be derived from rules, so they are not modelled here.
"""

from __future__ import annotations

import functools
from datetime import date, timedelta

# add_banking_days refuses to look further ahead than this, about 14.5 years of banking days; no
# ACH deadline is anywhere near that, so a larger n is a bug in the caller.
MAX_BANKING_DAYS = 3660
# banking_days_between refuses wider spans than this. It is twice MAX_BANKING_DAYS because 3660
# banking days span about 5,300 calendar days, and any result of add_banking_days must be countable.
MAX_SPAN_DAYS = 2 * MAX_BANKING_DAYS

# The Fed first observed Juneteenth in 2022. It became a federal holiday on 17 June 2021, two days
# before it fell on a Saturday, and the Fed kept its payment services open on Friday 18 June 2021
# as it does for every Saturday holiday; its first closure for it was Monday 20 June 2022.
JUNETEENTH_FIRST_YEAR = 2022

_ONE_DAY = timedelta(days=1)
_MONDAY, _THURSDAY, _SATURDAY, _SUNDAY = 0, 3, 5, 6


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th `weekday` (0 = Monday) of the month: (2025, 11, _THURSDAY, 4) gives Nov 27."""
    first = date(year, month, 1)
    days_to_first = (weekday - first.weekday()) % 7
    return first + timedelta(days=days_to_first + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    """The last `weekday` (0 = Monday) of the month, counted back from the first of the next."""
    next_month_first = date(year + month // 12, month % 12 + 1, 1)
    last = next_month_first - _ONE_DAY
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(holiday: date) -> date:
    """The day the Fed closes for `holiday`.

    A Sunday holiday moves to the Monday after. A Saturday holiday does not move: the Fed stays open
    the Friday before, unlike the federal government, which closes that Friday.
    """
    if holiday.weekday() == _SUNDAY:
        return holiday + _ONE_DAY
    return holiday


@functools.cache
def fed_holidays(year: int) -> frozenset[date]:
    """The Federal Reserve Banks' standard holidays of `year`, on the days they are observed.

    A holiday that falls on a Saturday stays in the set on its Saturday, as the Fed's published
    schedule lists it; it closes nothing that the weekend does not already close. No holiday moves
    into another year: only Sunday holidays move, and Dec 25 and Jan 1 move to Dec 26 and Jan 2.
    """
    holidays = [
        date(year, 1, 1),  # New Year's Day
        _nth_weekday(year, 1, _MONDAY, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, _MONDAY, 3),  # Washington's Birthday
        _last_weekday(year, 5, _MONDAY),  # Memorial Day
        date(year, 7, 4),  # Independence Day
        _nth_weekday(year, 9, _MONDAY, 1),  # Labor Day
        _nth_weekday(year, 10, _MONDAY, 2),  # Columbus Day
        date(year, 11, 11),  # Veterans Day
        _nth_weekday(year, 11, _THURSDAY, 4),  # Thanksgiving Day
        date(year, 12, 25),  # Christmas Day
    ]
    if year >= JUNETEENTH_FIRST_YEAR:
        holidays.append(date(year, 6, 19))
    return frozenset(_observed(holiday) for holiday in holidays)


def is_banking_day(d: date) -> bool:
    """True when the Federal Reserve Banks settle on `d`: a weekday that is not a Fed holiday."""
    return d.weekday() < _SATURDAY and d not in fed_holidays(d.year)


def next_banking_day(d: date) -> date:
    """The first banking day strictly after `d`."""
    candidate = d + _ONE_DAY
    while not is_banking_day(candidate):
        candidate += _ONE_DAY
    return candidate


def add_banking_days(d: date, n: int) -> date:
    """The n-th banking day after `d`; for n == 0, `d` itself if it is a banking day, else the next.

    For n >= 1 a day the Fed is closed counts like the banking day before it: a Saturday plus one
    banking day is the Monday, the same as the Friday before it plus one.
    """
    if n < 0 or n > MAX_BANKING_DAYS:
        raise ValueError(f"n '{n}' must be between 0 and {MAX_BANKING_DAYS} banking days")
    result = d
    for _ in range(n):
        result = next_banking_day(result)
    # Only n == 0 can leave `result` on a day the Fed is closed.
    return result if is_banking_day(result) else next_banking_day(result)


def banking_days_between(start: date, end: date) -> int:
    """How many banking days fall in (start, end]: after `start`, up to and including `end`."""
    if end < start:
        raise ValueError(f"end '{end}' is before start '{start}'")
    span_days = (end - start).days
    if span_days > MAX_SPAN_DAYS:
        raise ValueError(
            f"span from '{start}' to '{end}' is {span_days} days, more than {MAX_SPAN_DAYS}"
        )
    days = (start + timedelta(days=offset) for offset in range(1, span_days + 1))
    return sum(1 for day in days if is_banking_day(day))
