"""The traffic generator: reproducible, time-ordered, well-formed, varied, all fraud patterns."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from billfold.risk import synth

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


def test_too_small_a_world_is_refused_by_value() -> None:
    """Asking for too few users or days fails with a message naming the value."""
    with pytest.raises(ValueError, match="users 10 "):
        synth.generate(users=10)
    with pytest.raises(ValueError, match="days 3 "):
        synth.generate(days=3)
