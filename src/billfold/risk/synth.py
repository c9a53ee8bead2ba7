"""A seeded generator of wallet traffic: varied legitimate behaviour and eight kinds of fraud.

Nothing is downloaded. The same (users, days, seed) always gives the same events, so a model trained
by `billfold risk train` can be rebuilt and its evaluation repeated by anyone. Legitimate traffic is
deliberately untidy (travellers, new phones, landlords and treasurers receiving from many people,
rent just under $3,000, big purchases from strangers) so that the rules and the model meet the same
false-positive pressure they would meet in production.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
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
HOME_COUNTRIES = ("US", "MX", "CA", "IN", "PH", "GB", "BR", "DE")
HOME_WEIGHTS = (0.93, 0.02, 0.015, 0.01, 0.01, 0.006, 0.005, 0.004)
TRAVEL_COUNTRIES = ("MX", "CA", "GB", "FR", "IT", "ES", "JP", "DE", "BR", "PH")
VPN_COUNTRIES = ("NL", "DE", "GB", "CA")

# Relative activity by hour of day for people who sleep at night, and for night owls.
DAY_HOURS = (1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 4, 5, 6, 7, 6, 5, 5, 6, 7, 8, 8, 7, 5, 3, 2)
NIGHT_HOURS = DAY_HOURS[-5:] + DAY_HOURS[:-5]
SEGMENT_P2P_PER_DAY = {"heavy": 0.6, "regular": 0.14, "light": 0.04}


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

    @property
    def id(self) -> int:
        return self.profile.user_id

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

    def __init__(self, days: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.days = days
        self.end = START + timedelta(days=days)
        self.people: dict[int, Person] = {}
        self.legit_ids: list[int] = []
        self.groups: list[list[int]] = []
        self.events: list[Event] = []

    def at(self, day: float) -> datetime:
        return START + timedelta(days=day)

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
    ) -> None:
        """Records an event from `place` (device, country, address), by default the person's own.

        Events outside the world's days, or before the person or the recipient signed up, are
        dropped, so callers can schedule freely.
        """
        if not (START <= ts < self.end) or ts < person.profile.signup_at:
            return
        if to is not None and ts < self.people[to].profile.signup_at:
            return
        where = place or person.context(ts, self.rng)
        labelled = pattern is not None
        self.events.append(
            Event(ts, kind, person.id, to, amount_minor, rail, *where, labelled, pattern)
        )

    def time_on(self, day: int, night_owl: bool = False) -> datetime:
        """A time on `day` drawn from the daily rhythm."""
        hours = NIGHT_HOURS if night_owl else DAY_HOURS
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


def generate(users: int = 20_000, days: int = 90, seed: int = 7) -> Dataset:
    """Generates `users` legitimate users over `days` days plus fraud, events sorted by time."""
    if users < 200:
        raise ValueError(f"users {users} is too few for friend groups and fraud victims (min 200)")
    if days < 14:
        raise ValueError(f"days {days} is too short for monthly behaviour (min 14)")
    world = World(days, seed)
    _populate(world, users)
    for uid in list(world.legit_ids):
        _everyday(world, world.people[uid])
    _bill_splits(world)
    _rent(world)
    _odd_but_legit(world)
    _sweep_receipts(world)
    _commit_fraud(world, users)
    # The sort is stable, so events at the same instant keep their (deterministic) creation order.
    world.events.sort(key=lambda e: e.ts)
    profiles = {uid: person.profile for uid, person in world.people.items()}
    return Dataset(population=users, users=profiles, events=world.events, days=days, seed=seed)


# Legitimate behaviour.


def _populate(world: World, users: int) -> None:
    rng = world.rng
    for _ in range(users):
        if rng.random() < 0.86:
            signup = START - timedelta(days=rng.uniform(30, 1500))
        else:
            signup = world.at(rng.uniform(0, world.days - 2))
        country = rng.choices(HOME_COUNTRIES, HOME_WEIGHTS)[0]
        devices = tuple(world.device_id() for _ in range(2 if rng.random() < 0.1 else 1))
        segment = rng.choices(("heavy", "regular", "light"), (0.1, 0.5, 0.4))[0]
        person = world.add_person(signup, country, segment, devices)
        if world.legit_ids and rng.random() < 0.05:
            _join_household(person, world.people[world.legit_ids[-1]])
        person.night_owl = rng.random() < 0.1
        person.vpn = rng.random() < 0.01
        _life_events(world, person)
        world.legit_ids.append(person.id)
    _friend_groups(world)


def _join_household(person: Person, housemate: Person) -> None:
    """Couples and families share a tablet and a home connection: a device with several users."""
    shared = housemate.profile.devices[0]
    person.profile = replace(
        person.profile,
        home_country=housemate.profile.home_country,
        devices=(shared, *person.profile.devices),
    )
    person.home_ip = housemate.home_ip


def _life_events(world: World, person: Person) -> None:
    """New phones, reinstalls and trips abroad: legitimate new devices and new countries."""
    rng = world.rng
    first = world.start_day(person)
    if rng.random() < 0.08:
        since = world.at(rng.uniform(first, world.days))
        person.device_eras.append((since, (world.device_id(),)))
    elif rng.random() < 0.03:
        # Some phones clear app data, or their owners reinstall often: a new device id each time.
        day = first + rng.uniform(0, 30)
        while day < world.days:
            person.device_eras.append((world.at(day), (world.device_id(),)))
            day += rng.uniform(7, 30)
    if rng.random() < 0.07:
        begin = world.at(rng.uniform(first, world.days))
        end = begin + timedelta(days=rng.uniform(3, 14))
        home = person.profile.home_country
        person.trips.append((begin, end, rng.choice([c for c in TRAVEL_COUNTRIES if c != home])))


def _friend_groups(world: World) -> None:
    """Everyone joins one group of 3-8 friends; three in ten join a second."""
    rng = world.rng
    for share in (1.0, 0.3):
        ids = list(world.legit_ids)
        rng.shuffle(ids)
        ids = ids[: int(len(ids) * share)]
        i = 0
        while i < len(ids):
            size = rng.randint(3, 8)
            world.groups.append(ids[i : i + size])
            i += size
    for group in world.groups:
        for uid in group:
            world.people[uid].friends.extend(m for m in group if m != uid)


def _everyday(world: World, p: Person) -> None:
    """One user's own habits: payments to friends, top-ups, cash-outs, pay, one big purchase."""
    rng, first = world.rng, world.start_day(p)
    rate = SEGMENT_P2P_PER_DAY[p.segment]
    salaried = p.profile.verified_bank and rng.random() < 0.3
    if p.profile.signup_at >= START and rng.random() < 0.6:
        _onboarding(world, p)
    for day in world.arrivals(rate, first, weekend_boost=1.4):
        _small_p2p(world, p, day)
    for day in world.arrivals(0.05 * rate if salaried else 0.25 * rate + 0.01, first):
        world.emit(
            p, world.time_on(day, p.night_owl), "add_funds", dollars(rng, 60, 0.7), rail="card"
        )
    if p.profile.verified_bank:
        for day in world.arrivals(0.1 * rate + 0.01, first):
            amount = dollars(rng, 300, 0.8, whole=0.9)
            world.emit(p, world.time_on(day, p.night_owl), "add_funds", amount, rail="ach")
    for day in world.arrivals(0.08 * rate + 0.01, first):
        rail = "ach" if rng.random() < 0.7 else "card"
        amount = dollars(rng, 250, 0.9, whole=0.6)
        world.emit(p, world.time_on(day, p.night_owl), "cash_out", amount, rail=rail)
    if salaried:
        _salary(world, p)
    if rng.random() < 0.15:
        _big_purchase(world, p, world.time_on(int(rng.uniform(first, world.days)), p.night_owl))


def _small_p2p(world: World, p: Person, day: int) -> None:
    """Lunch, coffee, paying a friend back: mostly friends, sometimes someone new. A fifth are
    topped up by card just before, and a fifth come with a second payment minutes later."""
    rng = world.rng
    ts = world.time_on(day, p.night_owl)
    amount = dollars(rng, 22, 0.8)
    if rng.random() < 0.2:
        top_up = max(1000, -(-amount // 2000) * 2000)
        world.emit(p, ts - timedelta(minutes=rng.uniform(1, 20)), "add_funds", top_up, rail="card")
    for _ in range(2 if rng.random() < 0.2 else 1):
        if p.friends and rng.random() < 0.8:
            to = world.people[rng.choice(p.friends)]
        else:
            to = world.pick_legit(ts)
        if to.id != p.id and to.profile.signup_at <= ts:
            world.emit(p, ts, "p2p", amount, to=to.id)
        ts, amount = ts + timedelta(minutes=rng.uniform(1, 15)), dollars(rng, 22, 0.8)


def _sweep_receipts(world: World) -> None:
    """A quarter of users cash out what friends send them within hours, as mules do."""
    rng = world.rng
    sweepers = {uid for uid in world.legit_ids if rng.random() < 0.25}
    for event in list(world.events):
        to = event.counterparty_id
        if to in sweepers and rng.random() < 0.5:
            later = event.ts + timedelta(minutes=rng.uniform(10, 240))
            rail = "card" if rng.random() < 0.4 else "ach"
            world.emit(world.people[to], later, "cash_out", event.amount_minor, rail=rail)


def _onboarding(world: World, p: Person) -> None:
    """A new user tops up by card and pays a friend straight away: new account, money in and out."""
    rng = world.rng
    ts = p.profile.signup_at + timedelta(minutes=rng.uniform(2, 120))
    amount = dollars(rng, 50, 0.5)
    world.emit(p, ts, "add_funds", amount, rail="card")
    to = world.people[rng.choice(p.friends)] if p.friends else world.pick_legit(ts)
    if to.id != p.id and to.profile.signup_at <= ts:
        world.emit(p, ts + timedelta(minutes=rng.uniform(1, 60)), "p2p", amount, to=to.id)


def _salary(world: World, p: Person) -> None:
    """Pay by ACH every other Friday or on the 1st and 15th, sometimes moved on within hours."""
    rng = world.rng
    pay = dollars(rng, 1800, 0.4, whole=0.3)
    if rng.random() < 0.5:
        fridays = [d for d in range(world.days) if world.at(d).weekday() == 4]
        paydays = fridays[rng.randrange(2) :: 2]
    else:
        paydays = world.month_days(1) + world.month_days(15)
    for day in paydays:
        ts = world.at(day) + timedelta(hours=rng.uniform(3, 7))
        world.emit(p, ts, "add_funds", round(pay * rng.uniform(0.97, 1.03)), rail="ach")
        if rng.random() < 0.35:
            later = ts + timedelta(hours=rng.uniform(0.5, 30))
            world.emit(p, later, "cash_out", round(pay * rng.uniform(0.2, 0.8)), rail="ach")


def _big_purchase(world: World, p: Person, ts: datetime) -> None:
    """A used car or a sofa from a stranger, sometimes topped up just before: looks like a scam."""
    rng = world.rng
    seller = world.pick_legit(ts)
    amount = dollars(rng, 600, 0.6, whole=0.95)
    if rng.random() < 0.4:
        rail = "ach" if p.profile.verified_bank else "card"
        world.emit(p, ts - timedelta(minutes=rng.uniform(5, 90)), "add_funds", amount, rail=rail)
    if seller.id != p.id:
        world.emit(p, ts, "p2p", amount, to=seller.id)


def _bill_splits(world: World) -> None:
    """Someone pays for dinner or a trip and the friends pay their share within hours."""
    rng = world.rng
    for group in world.groups:
        for day in world.arrivals(0.01 * len(group), 0, weekend_boost=1.6):
            payer = world.people[rng.choice(group)]
            ts = world.at(day) + timedelta(hours=rng.uniform(17, 23))
            share = dollars(rng, 30, 0.6, whole=0.5)
            for uid in group:
                if uid != payer.id and rng.random() < 0.7:
                    delay = timedelta(minutes=rng.uniform(5, 720))
                    world.emit(world.people[uid], ts + delay, "p2p", share, to=payer.id)


def _rent(world: World) -> None:
    """Tenants pay a landlord around the 1st: a legitimate fan-in, some rents just under $3,000."""
    rng = world.rng
    landlords = rng.sample(world.legit_ids, k=max(1, len(world.legit_ids) // 100))
    for uid in world.legit_ids:
        landlord = world.people[rng.choice(landlords)]
        if rng.random() >= 0.15 or landlord.id == uid:
            continue
        tenant = world.people[uid]
        rent = round(rng.uniform(600, 2600)) * 100
        if rng.random() < 0.1:
            rent = rng.randrange(2850, 3000) * 100
        for first in world.month_days(1):
            day = first + rng.choice((-2, -1, 0, 0, 0, 1, 2, 4))
            world.emit(tenant, world.time_on(day, tenant.night_owl), "p2p", rent, to=landlord.id)


def _odd_but_legit(world: World) -> None:
    """Treasurers, marketplace sellers and savers: legitimate users who trip naive rules."""
    rng, n = world.rng, len(world.legit_ids)
    for uid in rng.sample(world.legit_ids, k=n // 100):
        _collection(world, world.people[uid])
    for uid in rng.sample(world.legit_ids, k=n // 200):
        seller = world.people[uid]
        for day in world.arrivals(0.3, world.start_day(seller)):
            ts = world.time_on(day)
            buyer = world.pick_legit(ts)
            if buyer.id != uid:
                world.emit(buyer, ts, "p2p", dollars(rng, 80, 0.8), to=uid)
    for uid in rng.sample(world.legit_ids, k=n // 300):
        saver = world.people[uid]
        ts = world.time_on(int(rng.uniform(world.start_day(saver), world.days)))
        amount = rng.randrange(90, 100) * 10_000
        world.emit(saver, ts, "add_funds", amount, rail="ach")
        world.emit(saver, ts + timedelta(days=rng.uniform(0.1, 10)), "cash_out", amount, rail="ach")


def _collection(world: World, treasurer: Person) -> None:
    """A league treasurer collects from many people in a day, then pays the venue in one go."""
    rng = world.rng
    ts = world.time_on(int(rng.uniform(world.start_day(treasurer), world.days)))
    share, total = dollars(rng, 60, 0.5), 0
    for _ in range(rng.randint(8, 20)):
        payer = world.pick_legit(ts)
        if payer.id != treasurer.id:
            world.emit(
                payer, ts + timedelta(hours=rng.uniform(0, 24)), "p2p", share, to=treasurer.id
            )
            total += share
    if rng.random() < 0.5:
        venue = world.pick_legit(ts)
        world.emit(treasurer, ts + timedelta(days=rng.uniform(1, 3)), "p2p", total, to=venue.id)


# Fraud. Every event a fraudster controls is labelled with its pattern; victims' own ordinary
# events stay unlabelled.

FRAUD_COUNTRIES = ("NG", "RO", "VN", "BR", "PH", "IN", "NL")
INCIDENTS_PER_20K_USERS = {
    "account_takeover": 130,
    "mule_fan_in": 35,
    "mule_fan_out": 45,
    "card_testing": 35,
    "bust_out": 70,
    "structuring": 40,
    "synthetic_identity": 18,
    "scam_new_payee": 170,
}


def _commit_fraud(world: World, users: int) -> None:
    builders = {
        "account_takeover": _account_takeover,
        "mule_fan_in": _mule_fan_in,
        "mule_fan_out": _mule_fan_out,
        "card_testing": _card_testing,
        "bust_out": _bust_out,
        "structuring": _structuring,
        "synthetic_identity": _synthetic_identity,
        "scam_new_payee": _scam_new_payee,
    }
    for pattern in PATTERNS:
        for _ in range(max(2, round(INCIDENTS_PER_20K_USERS[pattern] * users / 20_000))):
            builders[pattern](world, world.at(world.rng.uniform(1, world.days - 0.5)))


def _mule(world: World, ts: datetime) -> Person:
    """A money mule: half are real users recruited with their history, half opened for the job."""
    if world.rng.random() < 0.5:
        return world.pick_legit(ts, min_age_days=30)
    return _new_account(world, ts, 1, 45)


def _new_account(world: World, ts: datetime, min_days: float, max_days: float) -> Person:
    """An account opened by a fraudster between `max_days` and `min_days` before `ts`."""
    signup = ts - timedelta(days=world.rng.uniform(min_days, max_days))
    return world.add_person(signup, "US", "fraud")


def _foreign_place(world: World, home: str) -> tuple[str, str, str]:
    """A fresh device in a country other than `home`: the attacker's."""
    country = world.rng.choice([c for c in FRAUD_COUNTRIES if c != home])
    return world.device_id(), country, random_ip(country, world.rng)


def _after(world: World, ts: datetime, min_minutes: float, max_minutes: float) -> datetime:
    return ts + timedelta(minutes=world.rng.uniform(min_minutes, max_minutes))


def _cash_out_all(world: World, mule: Person, ts: datetime, amount: int, pattern: str) -> None:
    parts = world.rng.choice((1, 1, 2))
    for _ in range(parts):
        ts = _after(world, ts, 5, 360)
        rail = world.rng.choice(("card", "ach"))
        world.emit(mule, ts, "cash_out", amount // parts, rail=rail, pattern=pattern)


def _account_takeover(world: World, t: datetime) -> None:
    """A new device, usually abroad, tops up from the saved card and drains to a fresh payee."""
    rng, pattern = world.rng, "account_takeover"
    victim = world.pick_legit(t, min_age_days=60)
    place: tuple[str, str, str] | None = _foreign_place(world, victim.profile.home_country)
    roll = rng.random()
    if roll < 0.25:
        # Remote-access malware drives the victim's own phone: no new device, no new country.
        place = None
    elif roll < 0.5:
        home = victim.profile.home_country
        place = (world.device_id(), home, random_ip(home, rng))
    if rng.random() < 0.3 and victim.friends:
        # The victim was using the app, perhaps following the phishing link, just before.
        before = t - timedelta(minutes=rng.uniform(10, 180))
        world.emit(victim, before, "p2p", dollars(rng, 22, 0.8), to=rng.choice(victim.friends))
    balance, ts = dollars(rng, 900, 0.8, whole=0.2), t
    if rng.random() < 0.3:
        top_up = dollars(rng, 400, 0.5)
        world.emit(victim, ts, "add_funds", top_up, rail="card", pattern=pattern, place=place)
        balance += top_up
    mule = _mule(world, t)
    parts = rng.choice((1, 1, 2, 3))
    for _ in range(parts):
        ts = _after(world, ts, 1, 15)
        world.emit(victim, ts, "p2p", balance // parts, to=mule.id, pattern=pattern, place=place)
    _cash_out_all(world, mule, ts, balance, pattern)


def _mule_fan_in(world: World, t: datetime) -> None:
    """A new or recruited account receives from many senders, mostly brand-new and card-funded,
    and cashes out."""
    rng, pattern = world.rng, "mule_fan_in"
    mule = _new_account(world, t, 0.1, 5) if rng.random() < 0.6 else _mule(world, t)
    # Half the farms run a few phones; the other half spoof a fresh device id per account.
    farm = [world.device_id() for _ in range(rng.randint(1, 3))] if rng.random() < 0.5 else []
    total, last = 0, t
    for _ in range(rng.randint(6, 20)):
        ts = t + timedelta(hours=rng.uniform(0, 36))
        amount = dollars(rng, 150, 0.6)
        if rng.random() < 0.7:
            sender = _new_account(world, ts, 0.05, 6)
            place = (rng.choice(farm) if farm else sender.profile.devices[0], "US", sender.home_ip)
            funded = ts - timedelta(minutes=rng.uniform(1, 30))
            world.emit(
                sender, funded, "add_funds", amount, rail="card", pattern=pattern, place=place
            )
            world.emit(sender, ts, "p2p", amount, to=mule.id, pattern=pattern, place=place)
        else:
            # A real person paying for goods that never come.
            sender = world.pick_legit(ts, 30)
            world.emit(sender, ts, "p2p", amount, to=mule.id, pattern=pattern)
        total, last = total + amount, max(last, ts)
    _cash_out_all(world, mule, last, total, pattern)


def _mule_fan_out(world: World, t: datetime) -> None:
    """A large sum lands on a mule and is split within the hour to many fresh accounts."""
    rng, pattern = world.rng, "mule_fan_out"
    mule = _mule(world, t)
    source = _new_account(world, t, 1, 30)
    amount = dollars(rng, 3000, 0.5, whole=0.9)
    funded = t - timedelta(minutes=rng.uniform(5, 240))
    world.emit(
        source, funded, "add_funds", amount, rail=rng.choice(("ach", "card")), pattern=pattern
    )
    world.emit(source, t, "p2p", amount, to=mule.id, pattern=pattern)
    parts, ts = rng.randint(5, 15), t
    for _ in range(parts):
        ts = _after(world, ts, 1, 12)
        dest = _mule(world, ts)
        part = amount * 95 // 100 // parts + rng.randrange(-500, 500)
        world.emit(mule, ts, "p2p", part, to=dest.id, pattern=pattern)
        if rng.random() < 0.5:
            _cash_out_all(world, dest, ts, part, pattern)


def _card_testing(world: World, t: datetime) -> None:
    """Many tiny card top-ups with odd cents to find live cards, then a real charge moved out."""
    rng, pattern = world.rng, "card_testing"
    if rng.random() < 0.7:
        actor, place = _new_account(world, t, 0.01, 3), None
    else:
        actor = world.pick_legit(t, 30)
        place = _foreign_place(world, actor.profile.home_country)
    ts, total = t, 0
    for _ in range(rng.randint(8, 40)):
        ts += timedelta(seconds=rng.uniform(10, 150))
        amount = rng.randrange(50, 999)
        world.emit(actor, ts, "add_funds", amount, rail="card", pattern=pattern, place=place)
    for _ in range(rng.randint(1, 2)):
        ts, amount = _after(world, ts, 1, 30), dollars(rng, 250, 0.5)
        world.emit(actor, ts, "add_funds", amount, rail="card", pattern=pattern, place=place)
        total += amount
    ts = _after(world, ts, 1, 60)
    if rng.random() < 0.5:
        mule = _mule(world, ts)
        world.emit(actor, ts, "p2p", total, to=mule.id, pattern=pattern, place=place)
    else:
        world.emit(actor, ts, "cash_out", total, rail="card", pattern=pattern, place=place)


def _bust_out(world: World, t: datetime) -> None:
    """A quiet account deposits far more by ACH than ever and moves it all out before it settles."""
    rng, pattern = world.rng, "bust_out"
    actor = _new_account(world, t, 20, 120)
    actor.profile = replace(actor.profile, verified_bank=True)
    first, last = world.start_day(actor), (t - START).total_seconds() / 86400
    for _ in range(rng.randint(2, 6)):
        ts = world.time_on(int(rng.uniform(first, last)))
        if ts < t:
            world.emit(actor, ts, "add_funds", dollars(rng, 40, 0.5), rail="card")
    deposit = dollars(rng, 4000, 0.5, whole=0.9)
    world.emit(actor, t, "add_funds", deposit, rail="ach", pattern=pattern)
    ts, remaining = t, deposit
    if rng.random() < 0.7:
        ts, cash = _after(world, ts, 2, 120), deposit * rng.randrange(40, 70) // 100
        world.emit(actor, ts, "cash_out", cash, rail="card", pattern=pattern)
        remaining -= cash
    parts = rng.randint(1, 3)
    for _ in range(parts):
        ts = _after(world, ts, 2, 180)
        dest = _mule(world, ts)
        world.emit(actor, ts, "p2p", remaining // parts, to=dest.id, pattern=pattern)


def _structuring(world: World, t: datetime) -> None:
    """Repeated movements just under $10,000 or $3,000, spread over days, to dodge reports."""
    rng, pattern = world.rng, "structuring"
    actor = world.pick_legit(t, 30) if rng.random() < 0.6 else _new_account(world, t, 10, 200)
    actor.profile = replace(actor.profile, verified_bank=True)
    associate = world.pick_legit(t)
    top, step = (1_000_000, -4) if rng.random() < 0.6 else (300_000, -3)
    ts = t
    for _ in range(rng.randint(3, 8)):
        amount = int(round(top * rng.uniform(0.9, 0.995), step))
        kind = rng.choice(KINDS)
        rail = None if kind == "p2p" else "ach"
        to = associate.id if kind == "p2p" and associate.id != actor.id else None
        if kind == "p2p" and to is None:
            kind, rail = "add_funds", "ach"
        world.emit(actor, ts, kind, amount, to=to, rail=rail, pattern=pattern)
        ts += timedelta(hours=rng.uniform(4, 40))


def _synthetic_identity(world: World, t: datetime) -> None:
    """Accounts opened together, often on shared phones, pass sums round, then bust out."""
    rng, pattern = world.rng, "synthetic_identity"
    born = t - timedelta(days=rng.uniform(10, 40))
    shared = rng.random() < 0.5
    devices = [world.device_id() for _ in range(rng.randint(1, 3))]
    ring: list[Person] = []
    for _ in range(rng.randint(5, 12)):
        signup = born + timedelta(hours=rng.uniform(0, 72))
        own = (rng.choice(devices),) if shared else ()
        member = world.add_person(signup, "US", "fraud", own)
        member.profile = replace(member.profile, verified_bank=True)
        member.home_ip = ring[0].home_ip if ring else member.home_ip
        ring.append(member)
    for member in ring:
        span = (t - member.profile.signup_at).total_seconds()
        for _ in range(rng.randint(2, 5)):
            ts = member.profile.signup_at + timedelta(seconds=rng.uniform(0, span))
            amount = rng.choice((2000, 2500, 5000, 10000))
            peer = rng.choice(ring)
            if peer is member or rng.random() < 0.4:
                world.emit(member, ts, "add_funds", amount, rail="card", pattern=pattern)
            else:
                world.emit(member, ts, "p2p", amount, to=peer.id, pattern=pattern)
    _ring_bust_out(world, ring, t)


def _ring_bust_out(world: World, ring: list[Person], t: datetime) -> None:
    rng, pattern = world.rng, "synthetic_identity"
    collector = _mule(world, t)
    for member in ring:
        ts = t + timedelta(hours=rng.uniform(0, 8))
        amount = dollars(rng, 1200, 0.4, whole=0.95)
        world.emit(member, ts, "add_funds", amount, rail="ach", pattern=pattern)
        ts = _after(world, ts, 2, 90)
        if rng.random() < 0.5:
            world.emit(member, ts, "cash_out", amount, rail="card", pattern=pattern)
        else:
            world.emit(member, ts, "p2p", amount, to=collector.id, pattern=pattern)


def _scam_new_payee(world: World, t: datetime) -> None:
    """A real user, on their own phone at home, sends an unusually large sum to a never-seen payee.

    Half the time the scammer first sends a few cents with a note, the way such scams open a
    conversation; a third of victims are talked into a second, larger payment.
    """
    rng, pattern = world.rng, "scam_new_payee"
    victim = world.pick_legit(t, 90)
    scammer = _mule(world, t)
    if rng.random() < 0.5:
        opener = t - timedelta(hours=rng.uniform(0.2, 48))
        world.emit(scammer, opener, "p2p", rng.randrange(1, 100), to=victim.id, pattern=pattern)
    amount = dollars(rng, 1200, 0.6, whole=0.9)
    world.emit(victim, t, "p2p", amount, to=scammer.id, pattern=pattern)
    ts, total = t, amount
    if rng.random() < 0.3:
        ts, second = _after(world, t, 10, 2880), round(amount * rng.uniform(0.5, 2.0))
        world.emit(victim, ts, "p2p", second, to=scammer.id, pattern=pattern)
        total += second
    _cash_out_all(world, scammer, ts, total, pattern)
