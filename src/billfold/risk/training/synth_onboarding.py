"""New users' first days in the generated world: the normal case of a growing wallet.

A new user signs up, often because a friend who joined shortly before invited them, tops up by
card or by ACH, pays a friend (often one who also just joined) within the hour, is paid by the
friend who invited them, and splits a bill with the friends they came with. None of it is
fraud, and all of it looks like the first steps of fraud to a model that never saw it: an
account minutes old, money in and straight out, a first-time payee who is a new account.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from billfold.risk.training.synth_world import Person, World

# Of new users: who tops up first, who pays someone on day one, and who splits a bill in week one.
FIRST_TOP_UP = 0.85
FIRST_TOP_UP_ACH = 0.35  # of those with a verified bank account
FIRST_PAYMENT = 0.7
WELCOME_PAYMENT = 0.5  # of invited users: the inviter pays them
FIRST_WEEK_SPLIT = 0.35
SPLIT_FRIENDS = 5
# A first top-up is mostly a round sum, from $10 to $500.
FIRST_TOP_UPS = (10, 20, 25, 40, 50, 75, 100, 150, 200, 250, 300, 400, 500)
FIRST_TOP_UP_WEIGHTS = (6, 16, 8, 3, 18, 3, 18, 5, 9, 4, 4, 2, 4)


def join_together(world: World, joined: list[Person]) -> None:
    """An invited user and the friend who invited them are friends, and so are those that friend
    invited: a group that joined the wallet together."""
    invitees: dict[int, list[Person]] = {}
    for person in joined:
        if person.invited_by is not None:
            invitees.setdefault(person.invited_by, []).append(person)
    for inviter_id, group in invitees.items():
        inviter = world.people[inviter_id]
        members = [inviter, *group]
        for member in members:
            member.friends.extend(m.id for m in members if m is not member)


def onboarding(world: World, p: Person) -> None:
    """A new user's first day and week: top-up, first payment, a welcome payment, a bill split."""
    rng = world.rng
    ts = p.profile.signup_at + timedelta(minutes=rng.lognormvariate(2.5, 1.0))
    balance = 0
    if rng.random() < FIRST_TOP_UP:
        ach = p.profile.verified_bank and rng.random() < FIRST_TOP_UP_ACH
        if rng.random() < 0.75:
            dollars = rng.choices(FIRST_TOP_UPS, FIRST_TOP_UP_WEIGHTS)[0]
            balance = round(dollars * world.params.amount_scale) * 100
        else:
            balance = world.dollars(60, 0.9, whole=0.8)
        balance = min(1_000_00, max(10_00, balance))
        rail = "ach" if ach else "card"
        world.emit(p, ts, "add_funds", balance, rail=rail, behaviour="first_top_up")
    if rng.random() < FIRST_PAYMENT:
        _first_payments(world, p, ts, balance)
    if p.invited_by is not None and rng.random() < WELCOME_PAYMENT:
        inviter = world.people[p.invited_by]
        later = p.profile.signup_at + timedelta(minutes=rng.uniform(5, 24 * 60))
        amount = min(20_000, world.dollars(20, 0.7))
        world.emit(inviter, later, "p2p", amount, to=p.id, behaviour="welcome_payment")
    if p.friends and rng.random() < FIRST_WEEK_SPLIT:
        _first_split(world, p)


def _first_payments(world: World, p: Person, ts: datetime, balance: int) -> None:
    """One to three payments within the first hour, to the inviter or other friends; a third
    of them exactly what was just topped up (people top up to pay)."""
    rng, when = world.rng, ts
    friends = ([p.invited_by] if p.invited_by is not None else []) + p.friends
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        when = when + timedelta(minutes=rng.uniform(1, 45))
        if friends and rng.random() < 0.85:
            to = world.people[rng.choice(friends)]
        else:
            to = world.pick_legit(when)
        amount = max(500, min(20_000, world.dollars(25, 0.8)))
        if balance and rng.random() < 0.35:
            amount = balance
        if to.id != p.id:
            world.emit(p, when, "p2p", amount, to=to.id, behaviour="first_payment")


def _first_split(world: World, p: Person) -> None:
    """In the first week, often on the first day, the new user pays for dinner and up to five
    friends pay them the same share within hours; some of those friends joined days or hours
    ago too, and top up by card just before, as people do to pay."""
    rng = world.rng
    day = world.start_day(p) + (rng.uniform(0, 0.5) if rng.random() < 0.4 else rng.uniform(0, 7))
    ts = world.at(day) + timedelta(hours=rng.uniform(0, 6))
    share = world.dollars(30, 0.6, whole=0.5)
    friends = list(dict.fromkeys(p.friends))
    for uid in rng.sample(friends, k=min(SPLIT_FRIENDS, len(friends))):
        friend = world.people[uid]
        paid_at = ts + timedelta(minutes=rng.uniform(2, 360))
        if paid_at - friend.profile.signup_at < timedelta(days=7) and rng.random() < 0.6:
            top_up = max(1_000, -(-share // 1_000) * 1_000 + rng.choice((0, 1_000, 2_000)))
            before = paid_at - timedelta(minutes=rng.uniform(1, 20))
            world.emit(friend, before, "add_funds", top_up, rail="card", behaviour="bill_split")
        world.emit(friend, paid_at, "p2p", share, to=p.id, behaviour="bill_split")
