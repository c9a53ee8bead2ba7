"""Feature extraction: many documented features, computed from the past only, with bounded state."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from billfold.risk.features import FEATURE_NAMES, FEATURES, features_for, replay
from billfold.risk.history import MAX_KNOWN_PARTIES, MAX_WINDOW_ENTRIES, HistoryState, observe
from billfold.risk.training import synth

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
OLD, MULE = 1, 2


def rows(dataset: synth.Dataset, events: list[synth.Event]) -> np.ndarray:
    return np.array(list(replay(dataset.users.values(), events)))


def fresh_state() -> HistoryState:
    state = HistoryState()
    state.register_user(OLD, T0 - timedelta(days=400), True, "US", ["phone-1"])
    state.register_user(MULE, T0 - timedelta(days=2), False, "US", ["phone-9"])
    return state


def event(minutes: float, kind: str = "p2p", amount: int = 2_000, **kw: object) -> synth.Event:
    fields: dict[str, object] = {
        "ts": T0 + timedelta(minutes=minutes),
        "kind": kind,
        "user_id": OLD,
        "counterparty_id": MULE if kind == "p2p" else None,
        "amount_minor": amount,
        "rail": None if kind == "p2p" else "card",
        "device_id": "phone-1",
        "country": "US",
        "ip": "24.1.2.3",
    }
    fields.update(kw)
    return synth.Event(**fields)  # type: ignore[arg-type]


def run(state: HistoryState, events: list[synth.Event]) -> dict[str, float]:
    """Observes all but the last event, and returns the last one's features by name."""
    for past in events[:-1]:
        features_for(state, past)
        observe(state, past)
    return dict(zip(FEATURE_NAMES, features_for(state, events[-1]), strict=True))


def test_there_are_more_than_fifty_named_documented_features() -> None:
    """Feature names are unique, at least 50, and each has a one-line description."""
    assert len(FEATURE_NAMES) >= 50
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert all(doc and "\n" not in doc for _, doc in FEATURES)


def test_features_never_see_the_event_itself_its_label_or_the_future() -> None:
    """Replaying a prefix gives the same rows as replaying everything, and labels change nothing."""
    dataset = synth.generate(800, 20, 5)
    full = rows(dataset, dataset.events)
    half = len(dataset.events) // 2
    assert np.array_equal(rows(dataset, dataset.events[:half]), full[:half], equal_nan=True)
    flipped = [replace(e, label=not e.label, pattern=None) for e in dataset.events]
    assert np.array_equal(rows(dataset, flipped), full, equal_nan=True)
    assert full.shape == (len(dataset.events), len(FEATURE_NAMES))


def test_velocity_and_money_in_then_out() -> None:
    """Tiny card top-ups in a burst, then a cash-out, are counted from the earlier events only."""
    events = [event(i, "add_funds", 150 + i) for i in range(12)]
    events.append(event(30, "cash_out", 50_000, rail="card"))
    f = run(fresh_state(), events)
    assert f["card_add_count_1h"] == 12
    assert f["tiny_add_count_1h"] == 12
    assert f["add_count_1h"] == 12
    assert f["hours_since_last_add"] == pytest.approx(19 / 60)
    assert f["out_count_1h"] == 0
    assert f["cash_equivalent_24h"] == pytest.approx(sum(150 + i for i in range(12)) / 100 + 500)
    assert math.isnan(f["is_new_recipient"])


def test_recipient_history_shows_fan_in_from_new_accounts() -> None:
    """A recipient paid by three brand-new accounts shows them as new senders."""
    state = fresh_state()
    for sender in (10, 11, 12):
        state.register_user(sender, T0 - timedelta(days=1), False, "US", [f"farm-{sender}"])
    events = [
        event(i, user_id=sender, device_id=f"farm-{sender}")
        for i, sender in enumerate((10, 11, 12))
    ]
    events.append(event(10, amount=90_000))
    f = run(state, events)
    assert f["is_new_recipient"] == 1
    assert f["recipient_senders_24h"] == 3
    assert f["recipient_new_senders_24h"] == 3
    assert f["recipient_is_new_account"] == 1
    assert f["recipient_age_days"] == pytest.approx(2 + 10 / 1440)


def test_new_device_new_country_and_impossible_travel() -> None:
    """An event from another country an hour after one at home is impossible travel."""
    events = [event(0), event(60, device_id="phone-x", country="NG", ip="102.1.1.1")]
    f = run(fresh_state(), events)
    assert f["device_seen_before"] == 0
    assert f["country_seen_before"] == 0
    assert f["country_changed"] == 1
    assert f["impossible_travel"] == 1
    assert f["ip_prefix_seen_before"] == 0
    assert f["is_new_recipient"] == 0
    assert f["times_paid_recipient"] == 1


def test_state_stays_bounded_for_a_hyperactive_user() -> None:
    """Thousands of transfers to distinct recipients keep windows and known parties capped."""
    state = fresh_state()
    for i in range(MAX_WINDOW_ENTRIES + 500):
        observe(state, event(i / 100, counterparty_id=1_000 + i))
    history = state.history(OLD)
    assert len(history.outs) == MAX_WINDOW_ENTRIES
    assert len(history.recipients) == MAX_KNOWN_PARTIES
    assert len(history.amounts) == MAX_WINDOW_ENTRIES


def test_a_device_is_not_shared_with_an_account_opened_later() -> None:
    """Replay registers users at signup: a later account on the same phone is not seen earlier."""
    later = synth.UserProfile(7, T0 + timedelta(hours=1), False, "US", ("phone-1",))
    first = synth.UserProfile(OLD, T0 - timedelta(days=9), True, "US", ("phone-1",))
    payee = synth.UserProfile(MULE, T0 - timedelta(days=9), True, "US", ("phone-2",))
    events = [event(0), event(120, user_id=OLD)]
    before, after = list(replay([later, first, payee], events))
    device_other_users = FEATURE_NAMES.index("device_other_users")
    assert before[device_other_users] == 0
    assert after[device_other_users] == 1
