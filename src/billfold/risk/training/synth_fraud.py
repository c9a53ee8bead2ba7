"""The generator's fraud: eight patterns, each incident's events labelled with its pattern."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from billfold.risk.training.synth_world import (
    KINDS,
    PATTERNS,
    START,
    Person,
    World,
    dollars,
    random_ip,
)

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


def commit_fraud(world: World, users: int) -> None:
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
