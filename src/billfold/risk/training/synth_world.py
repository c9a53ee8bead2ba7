"""The generated world's people, events and shared helpers (synth generates the traffic)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# The first day of every generated world. A fixed date keeps the output reproducible; the 1st of a
# month means rent and monthly salaries fall inside the feature burn-in, as they would in a wallet
# that has been running for years.
START = datetime(2025, 1, 1, tzinfo=UTC)

KINDS = ("p2p", "add_funds", "cash_out")
PATTERNS = (
    "account_takeover",
    "mule_fan_in",
    "mule_fan_out",
    "card_testing",
    "bust_out",
    "structuring",
    "synthetic_identity",
    "scam_new_payee",
)

# First octets of addresses per country, disjoint so that an address implies a country.
COUNTRY_OCTETS: dict[str, tuple[int, ...]] = {
    "US": (24, 47, 64, 68, 71, 73, 76, 98, 99, 108),
    "MX": (187, 189, 201),
    "CA": (70, 142, 184),
    "GB": (81, 86, 92),
    "IN": (49, 103, 117),
    "PH": (112, 120, 180),
    "DE": (79, 84, 91),
    "FR": (78, 82, 90),
    "BR": (177, 179, 186),
    "NG": (102, 105, 197),
    "RO": (5, 89, 188),
    "VN": (14, 113, 171),
    "ES": (83, 88, 95),
    "IT": (87, 93, 151),
    "JP": (60, 106, 126),
    "NL": (31, 145, 185),
}
VPN_COUNTRIES = ("NL", "DE", "GB", "CA")

# Relative activity by hour of day for people who sleep at night, and for night owls.
DAY_HOURS = (1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 4, 5, 6, 7, 6, 5, 5, 6, 7, 8, 8, 7, 5, 3, 2)
NIGHT_HOURS = DAY_HOURS[-5:] + DAY_HOURS[:-5]


@dataclass(frozen=True, slots=True)
class WorldParams:
    """The behavioural parameters of a world's legitimate population. `evaluate` judges the model
    on a second world whose parameters differ from the one it was trained on (SECOND_WORLD)."""

    # Every legitimate amount's median is scaled by this.
    amount_scale: float = 1.0
    # The daily rhythm is shifted by this many hours (people elsewhere, or later risers).
    hour_shift: int = 0
    # Home countries and their weights.
    home_countries: tuple[str, ...] = ("US", "MX", "CA", "IN", "PH", "GB", "BR", "DE")
    home_weights: tuple[float, ...] = (0.93, 0.02, 0.015, 0.01, 0.01, 0.006, 0.005, 0.004)
    # The share of users who sign up while the world runs (the rest have years of history).
    new_user_share: float = 0.3
    # Of those, the share invited by a friend who joined shortly before.
    invited_share: float = 0.5
    # Relative activity per segment, and how busy a user is in their first week.
    p2p_per_day_scale: float = 1.0
    first_week_boost: float = 2.0


# The world nothing is trained or tuned on: more money a movement, people active three hours
# later, more of them abroad-born, and a faster-growing user base.
SECOND_WORLD = WorldParams(
    amount_scale=1.5,
    hour_shift=3,
    home_countries=("US", "MX", "CA", "IN", "PH", "GB", "BR", "DE", "FR", "ES"),
    home_weights=(0.78, 0.06, 0.04, 0.03, 0.03, 0.02, 0.015, 0.01, 0.01, 0.005),
    new_user_share=0.45,
    invited_share=0.65,
    p2p_per_day_scale=1.3,
    first_week_boost=3.0,
)

# What legitimate movements are doing, for the evaluation's false-block rate by behaviour.
BEHAVIOURS = (
    "everyday",
    "first_top_up",
    "first_payment",
    "welcome_payment",
    "bill_split",
    "new_phone",
    "travel",
    "salary_and_rent",
    "odd_but_legit",
)


@dataclass(frozen=True, slots=True)
class Event:
    """One money movement as the risk engine sees it before the money moves."""

    ts: datetime
    kind: str  # "p2p" | "add_funds" | "cash_out"
    user_id: int  # The user who initiates it: the sender of a P2P transfer.
    counterparty_id: int | None  # The recipient of a P2P transfer, else None.
    amount_minor: int
    rail: str | None  # "ach" | "card" for add-funds and cash-out, None for P2P.
    device_id: str
    country: str
    ip: str
    label: bool = False
    pattern: str | None = None
    behaviour: str | None = None  # legitimate events: one of BEHAVIOURS


@dataclass(frozen=True, slots=True)
class UserProfile:
    """What Billfold knows about a user from signup: no labels, nothing learned from behaviour."""

    user_id: int
    signup_at: datetime
    verified_bank: bool
    home_country: str
    devices: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Dataset:
    population: int  # The `users` asked for; `users` also holds the accounts fraudsters opened.
    users: dict[int, UserProfile]
    events: list[Event]
    days: int
    seed: int


@dataclass(slots=True)
class Person:
    """A generated user with the hidden traits that drive their behaviour."""

    profile: UserProfile
    segment: str
    night_owl: bool = False
    vpn: bool = False
    # Device sets in use from a time on: a new phone appends an entry.
    device_eras: list[tuple[datetime, tuple[str, ...]]] = field(default_factory=list)
    trips: list[tuple[datetime, datetime, str]] = field(default_factory=list)
    friends: list[int] = field(default_factory=list)
    home_ip: str = ""
    invited_by: int | None = None  # a friend who joined shortly before and invited them

    @property
    def id(self) -> int:
        return self.profile.user_id

    def situation(self, ts: datetime) -> str | None:
        """ "travel" on a trip, "new_phone" in the first week of a new device, else None."""
        if any(begin <= ts < end for begin, end, _ in self.trips):
            return "travel"
        if any(since <= ts < since + timedelta(days=7) for since, _ in self.device_eras):
            return "new_phone"
        return None

    def context(self, ts: datetime, rng: random.Random) -> tuple[str, str, str]:
        """The device, country and address this person acts from at `ts`."""
        devices = self.profile.devices
        for since, era_devices in self.device_eras:
            if ts >= since:
                devices = era_devices
        device = devices[0] if len(devices) == 1 else rng.choice(devices)
        for begin, end, country in self.trips:
            if begin <= ts < end:
                return device, country, random_ip(country, rng)
        if self.vpn and rng.random() < 0.3:
            country = rng.choice(VPN_COUNTRIES)
            return device, country, random_ip(country, rng)
        if rng.random() < 0.7:
            return device, self.profile.home_country, self.home_ip
        prefix = self.home_ip.rsplit(".", 2)[0]
        return (
            device,
            self.profile.home_country,
            f"{prefix}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        )


def random_ip(country: str, rng: random.Random) -> str:
    first = rng.choice(COUNTRY_OCTETS[country])
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def dollars(rng: random.Random, median: float, sigma: float, whole: float = 0.75) -> int:
    """A log-normal amount in cents; people mostly send whole dollars."""
    value = rng.lognormvariate(math.log(median), sigma)
    if rng.random() < whole:
        return max(100, round(value) * 100)
    return max(1, round(value * 100))


class World:
    """The generator's mutable state: people, the event list, and one seeded random source."""

    def __init__(self, days: int, seed: int, params: WorldParams | None = None) -> None:
        self.rng = random.Random(seed)
        self.params = params or WorldParams()
        shift = self.params.hour_shift % 24
        self.day_hours = DAY_HOURS[-shift:] + DAY_HOURS[:-shift] if shift else DAY_HOURS
        self.night_hours = NIGHT_HOURS[-shift:] + NIGHT_HOURS[:-shift] if shift else NIGHT_HOURS
        self.days = days
        self.end = START + timedelta(days=days)
        self.people: dict[int, Person] = {}
        self.legit_ids: list[int] = []
        self.groups: list[list[int]] = []
        self.events: list[Event] = []

    def at(self, day: float) -> datetime:
        return START + timedelta(days=day)

    def dollars(self, median: float, sigma: float, whole: float = 0.75) -> int:
        """A legitimate amount: `dollars` with the world's amount scale."""
        return dollars(self.rng, median * self.params.amount_scale, sigma, whole)

    def device_id(self) -> str:
        return f"dev-{self.rng.getrandbits(48):012x}"

    def add_person(
        self, signup_at: datetime, country: str, segment: str, devices: tuple[str, ...] = ()
    ) -> Person:
        rng = self.rng
        profile = UserProfile(
            user_id=len(self.people),
            signup_at=signup_at,
            verified_bank=rng.random() < 0.8,
            home_country=country,
            devices=devices or (self.device_id(),),
        )
        person = Person(profile=profile, segment=segment, home_ip=random_ip(country, rng))
        self.people[profile.user_id] = person
        return person

    def emit(
        self,
        person: Person,
        ts: datetime,
        kind: str,
        amount_minor: int,
        *,
        to: int | None = None,
        rail: str | None = None,
        pattern: str | None = None,
        place: tuple[str, str, str] | None = None,
        behaviour: str = "everyday",
    ) -> None:
        """Records an event from `place` (device, country, address), by default the person's own.

        Events outside the world's days, or before the person or the recipient signed up, are
        dropped, so callers can schedule freely. A legitimate event is tagged with `behaviour`;
        an everyday one made on a trip or in the first week on a new phone is tagged as such.
        """
        if not (START <= ts < self.end) or ts < person.profile.signup_at:
            return
        if to is not None and ts < self.people[to].profile.signup_at:
            return
        where = place or person.context(ts, self.rng)
        labelled = pattern is not None
        if labelled:
            tag = None
        elif behaviour == "everyday" and place is None:
            tag = person.situation(ts) or behaviour
        else:
            tag = behaviour
        self.events.append(
            Event(ts, kind, person.id, to, amount_minor, rail, *where, labelled, pattern, tag)
        )

    def time_on(self, day: int, night_owl: bool = False) -> datetime:
        """A time on `day` drawn from the daily rhythm."""
        hours = self.night_hours if night_owl else self.day_hours
        hour = self.rng.choices(range(24), weights=hours)[0]
        return self.at(day) + timedelta(hours=hour, seconds=self.rng.randrange(3600))

    def arrivals(
        self, rate_per_day: float, first_day: float, weekend_boost: float = 1.0
    ) -> Iterator[int]:
        """Days of a Poisson process from `first_day`; weekdays thinned when weekends are busier."""
        if rate_per_day <= 0:
            return
        rng, t = self.rng, first_day
        while True:
            t += rng.expovariate(rate_per_day * weekend_boost)
            if t >= self.days:
                return
            day = int(t)
            if (START + timedelta(days=day)).weekday() < 5 and rng.random() > 1 / weekend_boost:
                continue
            yield day

    def start_day(self, person: Person) -> float:
        return max(0.0, (person.profile.signup_at - START).total_seconds() / 86400)

    def month_days(self, day_of_month: int) -> list[int]:
        return [d for d in range(self.days) if (START + timedelta(days=d)).day == day_of_month]

    def pick_legit(self, before: datetime, min_age_days: float = 0) -> Person:
        """A random legitimate user who had signed up `min_age_days` before `before`."""
        limit = before - timedelta(days=min_age_days)
        for _ in range(100):
            person = self.people[self.rng.choice(self.legit_ids)]
            if person.profile.signup_at <= limit:
                return person
        raise ValueError(f"no legitimate user signed up before {limit.isoformat()}")
