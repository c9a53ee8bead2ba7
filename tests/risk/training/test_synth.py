"""The traffic generator: reproducible, time-ordered, well-formed, varied, all fraud patterns."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from billfold.risk.training import synth

USERS, DAYS, SEED = 3_000, 30, 3


@pytest.fixture(scope="module")
def dataset() -> synth.Dataset:
    return synth.generate(USERS, DAYS, SEED)


def test_same_seed_gives_identical_output_and_another_seed_does_not(
    dataset: synth.Dataset,
) -> None:
    """Two runs with one seed give equal events and users; a different seed gives other events."""
    again = synth.generate(USERS, DAYS, SEED)
    assert again.events == dataset.events
    assert again.users == dataset.users
    assert synth.generate(USERS, DAYS, SEED + 1).events != dataset.events


def test_events_are_time_ordered_and_well_formed(dataset: synth.Dataset) -> None:
    """Events are sorted, inside the world's days, after their user's signup, and typed by kind."""
    events = dataset.events
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(events))
    assert events[0].ts >= synth.START
    assert (events[-1].ts - synth.START).days < DAYS
    for event in events:
        assert event.ts >= dataset.users[event.user_id].signup_at
        assert event.amount_minor > 0
        assert event.label == (event.pattern is not None)
        if event.kind == "p2p":
            assert event.counterparty_id in dataset.users
            assert event.counterparty_id != event.user_id
            assert event.rail is None
        else:
            assert event.kind in ("add_funds", "cash_out")
            assert event.counterparty_id is None
            assert event.rail in ("ach", "card")


def test_every_fraud_pattern_is_present_and_fraud_is_rare(dataset: synth.Dataset) -> None:
    """All eight patterns occur, labelled by name, and fraud is a small share of all events."""
    patterns = Counter(e.pattern for e in dataset.events if e.label)
    assert set(patterns) == set(synth.PATTERNS)
    assert len(synth.PATTERNS) >= 8
    share = sum(patterns.values()) / len(dataset.events)
    assert 0.003 < share < 0.03


def test_legitimate_traffic_includes_what_looks_odd(dataset: synth.Dataset) -> None:
    """Legitimate users change phones, travel, get paid by ACH and pay rent near $3,000."""
    legit = [e for e in dataset.events if not e.label]
    profiles = dataset.users
    new_devices = [e for e in legit if e.device_id not in profiles[e.user_id].devices]
    abroad = [e for e in legit if e.country != profiles[e.user_id].home_country]
    salaries = [e for e in legit if e.kind == "add_funds" and e.rail == "ach"]
    near_3k = [e for e in legit if 270_000 <= e.amount_minor < 300_000]
    assert len(new_devices) > 20
    assert len(abroad) > 20
    assert len(salaries) > 100
    assert len(near_3k) > 5
    assert len({e.user_id for e in legit}) > USERS // 2


def test_new_users_are_a_real_share_and_do_what_new_users_do(dataset: synth.Dataset) -> None:
    """Every legitimate event is tagged with a behaviour; a real share of legitimate movements
    are by accounts under a week old; new users top up by card and by ACH (mostly $10 to $500),
    pay friends who joined days before them, are paid by whoever invited them, and split
    bills."""
    legit = [e for e in dataset.events if not e.label]
    assert all(e.behaviour in synth.BEHAVIOURS for e in legit)
    assert all(e.behaviour is None for e in dataset.events if e.label)
    by = Counter(e.behaviour for e in legit)
    assert {b for b in synth.BEHAVIOURS if by[b] == 0} == set()

    def age_days(e: synth.Event) -> float:
        return (e.ts - dataset.users[e.user_id].signup_at).total_seconds() / 86_400

    young = sum(1 for e in legit if age_days(e) < 7) / len(legit)
    assert 0.05 < young < 0.4
    first = [e for e in legit if e.behaviour == "first_top_up"]
    assert {e.rail for e in first} == {"card", "ach"}
    assert sum(1_000 <= e.amount_minor <= 50_000 for e in first) / len(first) > 0.9
    assert all(age_days(e) < 1 for e in first)
    to_new = [
        e
        for e in legit
        if e.behaviour == "first_payment"
        and (e.ts - dataset.users[e.counterparty_id or 0].signup_at).days < 7
    ]
    assert len(to_new) > 0.2 * by["first_payment"]


def test_the_unseen_world_behaves_otherwise() -> None:
    """SECOND_WORLD: larger amounts, other countries, more new users than the trained world."""
    trained = synth.generate(USERS, DAYS, SEED)
    unseen = synth.generate(USERS, DAYS, SEED, synth.SECOND_WORLD)

    def median_p2p(d: synth.Dataset) -> int:
        amounts = sorted(e.amount_minor for e in d.events if e.kind == "p2p" and not e.label)
        return amounts[len(amounts) // 2]

    def share_new(d: synth.Dataset) -> float:
        return sum(p.signup_at >= synth.START for p in d.users.values()) / len(d.users)

    def abroad(d: synth.Dataset) -> float:
        return sum(p.home_country != "US" for p in d.users.values()) / len(d.users)

    assert median_p2p(unseen) > 1.3 * median_p2p(trained)
    assert share_new(unseen) > share_new(trained) + 0.1
    assert abroad(unseen) > 2 * abroad(trained)


def test_too_small_a_world_is_refused_by_value() -> None:
    """Asking for too few users or days fails with a message naming the value."""
    with pytest.raises(ValueError, match="users 10 "):
        synth.generate(users=10)
    with pytest.raises(ValueError, match="days 3 "):
        synth.generate(days=3)
