"""A seeded generator of wallet traffic: varied legitimate behaviour and eight kinds of fraud.

Nothing is downloaded. The same (users, days, seed) always gives the same events, so a model trained
by `billfold risk train` can be rebuilt and its evaluation repeated by anyone. Legitimate traffic is
deliberately untidy (travellers, new phones, landlords and treasurers receiving from many people,
rent just under $3,000, big purchases from strangers) so that the rules and the model meet the same
false-positive pressure they would meet in production.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from billfold.risk.training.synth_fraud import commit_fraud
from billfold.risk.training.synth_onboarding import join_together, onboarding
from billfold.risk.training.synth_world import (
    BEHAVIOURS,
    PATTERNS,
    SECOND_WORLD,
    START,
    Dataset,
    Event,
    Person,
    UserProfile,
    World,
    WorldParams,
)

# What the rest of Billfold uses of the generator.
__all__ = [
    "BEHAVIOURS",
    "PATTERNS",
    "SECOND_WORLD",
    "START",
    "Dataset",
    "Event",
    "UserProfile",
    "WorldParams",
    "generate",
]


TRAVEL_COUNTRIES = ("MX", "CA", "GB", "FR", "IT", "ES", "JP", "DE", "BR", "PH")
SEGMENT_P2P_PER_DAY = {"heavy": 0.6, "regular": 0.14, "light": 0.04}


def generate(
    users: int = 20_000, days: int = 90, seed: int = 7, params: WorldParams | None = None
) -> Dataset:
    """Generates `users` legitimate users over `days` days plus fraud, events sorted by time.
    `params`: the legitimate population's behaviour (default: the training world's)."""
    if users < 200:
        raise ValueError(f"users {users} is too few for friend groups and fraud victims (min 200)")
    if days < 14:
        raise ValueError(f"days {days} is too short for monthly behaviour (min 14)")
    world = World(days, seed, params)
    _populate(world, users)
    for uid in list(world.legit_ids):
        _everyday(world, world.people[uid])
    _bill_splits(world)
    _rent(world)
    _odd_but_legit(world)
    _sweep_receipts(world)
    commit_fraud(world, users)
    # The sort is stable, so events at the same instant keep their (deterministic) creation order.
    world.events.sort(key=lambda e: e.ts)
    profiles = {uid: person.profile for uid, person in world.people.items()}
    return Dataset(population=users, users=profiles, events=world.events, days=days, seed=seed)


# Legitimate behaviour.


def _populate(world: World, users: int) -> None:
    rng, params = world.rng, world.params
    joined: list[Person] = []
    for _ in range(users):
        inviter = None
        if rng.random() >= params.new_user_share:
            signup = START - timedelta(days=rng.uniform(30, 1500))
        elif joined and rng.random() < params.invited_share:
            # Invited by someone who joined shortly before: friends who join together.
            inviter = rng.choice(joined[-200:])
            signup = inviter.profile.signup_at + timedelta(hours=rng.uniform(0.05, 72))
        else:
            # A growing wallet: more signups each week than the last.
            signup = world.at((world.days - 0.5) * rng.random() ** 0.7)
        country = rng.choices(params.home_countries, params.home_weights)[0]
        devices = tuple(world.device_id() for _ in range(2 if rng.random() < 0.1 else 1))
        segment = rng.choices(("heavy", "regular", "light"), (0.1, 0.5, 0.4))[0]
        person = world.add_person(signup, country, segment, devices)
        if world.legit_ids and rng.random() < 0.05:
            _join_household(person, world.people[world.legit_ids[-1]])
        person.night_owl = rng.random() < 0.1
        person.vpn = rng.random() < 0.01
        if inviter is not None:
            person.invited_by = inviter.id
        _life_events(world, person)
        world.legit_ids.append(person.id)
        if signup >= START:
            joined.append(person)
    _friend_groups(world)
    join_together(world, joined)


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
    rate = SEGMENT_P2P_PER_DAY[p.segment] * world.params.p2p_per_day_scale
    salaried = p.profile.verified_bank and rng.random() < 0.3
    if p.profile.signup_at >= START:
        onboarding(world, p)
        # A new user tries the app out: busier in their first week.
        extra = rate * (world.params.first_week_boost - 1)
        for day in world.arrivals(extra, first, weekend_boost=1.4):
            if day < first + 7:
                _small_p2p(world, p, day)
    for day in world.arrivals(rate, first, weekend_boost=1.4):
        _small_p2p(world, p, day)
    for day in world.arrivals(0.05 * rate if salaried else 0.25 * rate + 0.01, first):
        world.emit(
            p, world.time_on(day, p.night_owl), "add_funds", world.dollars(60, 0.7), rail="card"
        )
    if p.profile.verified_bank:
        for day in world.arrivals(0.1 * rate + 0.01, first):
            amount = world.dollars(300, 0.8, whole=0.9)
            world.emit(p, world.time_on(day, p.night_owl), "add_funds", amount, rail="ach")
    for day in world.arrivals(0.08 * rate + 0.01, first):
        rail = "ach" if rng.random() < 0.7 else "card"
        amount = world.dollars(250, 0.9, whole=0.6)
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
    amount = world.dollars(22, 0.8)
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
        ts, amount = ts + timedelta(minutes=rng.uniform(1, 15)), world.dollars(22, 0.8)


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


def _salary(world: World, p: Person) -> None:
    """Pay by ACH every other Friday or on the 1st and 15th, sometimes moved on within hours."""
    rng = world.rng
    pay = world.dollars(1800, 0.4, whole=0.3)
    if rng.random() < 0.5:
        fridays = [d for d in range(world.days) if world.at(d).weekday() == 4]
        paydays = fridays[rng.randrange(2) :: 2]
    else:
        paydays = world.month_days(1) + world.month_days(15)
    for day in paydays:
        ts = world.at(day) + timedelta(hours=rng.uniform(3, 7))
        paid = round(pay * rng.uniform(0.97, 1.03))
        world.emit(p, ts, "add_funds", paid, rail="ach", behaviour="salary_and_rent")
        if rng.random() < 0.35:
            later = ts + timedelta(hours=rng.uniform(0.5, 30))
            moved = round(pay * rng.uniform(0.2, 0.8))
            world.emit(p, later, "cash_out", moved, rail="ach", behaviour="salary_and_rent")


def _big_purchase(world: World, p: Person, ts: datetime) -> None:
    """A used car or a sofa from a stranger, sometimes topped up just before: looks like a scam."""
    rng = world.rng
    seller = world.pick_legit(ts)
    amount = world.dollars(600, 0.6, whole=0.95)
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
            share = world.dollars(30, 0.6, whole=0.5)
            for uid in group:
                if uid != payer.id and rng.random() < 0.7:
                    delay = timedelta(minutes=rng.uniform(5, 720))
                    world.emit(
                        world.people[uid],
                        ts + delay,
                        "p2p",
                        share,
                        to=payer.id,
                        behaviour="bill_split",
                    )


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
            world.emit(
                tenant,
                world.time_on(day, tenant.night_owl),
                "p2p",
                rent,
                to=landlord.id,
                behaviour="salary_and_rent",
            )


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
                world.emit(
                    buyer, ts, "p2p", world.dollars(80, 0.8), to=uid, behaviour="odd_but_legit"
                )
    for uid in rng.sample(world.legit_ids, k=n // 300):
        saver = world.people[uid]
        ts = world.time_on(int(rng.uniform(world.start_day(saver), world.days)))
        amount = rng.randrange(90, 100) * 10_000
        world.emit(saver, ts, "add_funds", amount, rail="ach", behaviour="odd_but_legit")
        world.emit(
            saver,
            ts + timedelta(days=rng.uniform(0.1, 10)),
            "cash_out",
            amount,
            rail="ach",
            behaviour="odd_but_legit",
        )


def _collection(world: World, treasurer: Person) -> None:
    """A league treasurer collects from many people in a day, then pays the venue in one go."""
    rng = world.rng
    ts = world.time_on(int(rng.uniform(world.start_day(treasurer), world.days)))
    share, total = world.dollars(60, 0.5), 0
    for _ in range(rng.randint(8, 20)):
        payer = world.pick_legit(ts)
        if payer.id != treasurer.id:
            later = ts + timedelta(hours=rng.uniform(0, 24))
            world.emit(payer, later, "p2p", share, to=treasurer.id, behaviour="odd_but_legit")
            total += share
    if rng.random() < 0.5:
        venue = world.pick_legit(ts)
        world.emit(
            treasurer,
            ts + timedelta(days=rng.uniform(1, 3)),
            "p2p",
            total,
            to=venue.id,
            behaviour="odd_but_legit",
        )
