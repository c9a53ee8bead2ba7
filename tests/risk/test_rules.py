"""Each rule on its own, and the verdict policy on top of them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from billfold.risk.gate import Action
from billfold.risk.rules import RiskRules, Signals, Strength, check_rules, decide

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
RULES = RiskRules(step_up_score=0.3, review_score=0.5, decline_score=0.9)
QUIET = Signals(
    kind="p2p",
    amount_minor=25_00,
    at=NOW,
    count_1m=1,
    count_1h=1,
    typical_amount_minor=1_000_00,
    device_known=True,
    country="US",
    country_known=True,
    last_country="US",
    last_country_at=NOW - timedelta(hours=1),
)


def rules_hit(**changes: object) -> list[str]:
    return [h.rule for h in check_rules(dataclasses.replace(QUIET, **changes), RULES)]


def test_an_ordinary_transfer_breaks_no_rule_and_is_allowed() -> None:
    """The quiet baseline every other test changes one thing of."""
    assert rules_hit() == []
    assert decide([], 0.01, QUIET, RULES).action is Action.ALLOW


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"count_1m": 6}, "velocity"),
        ({"count_1h": 11}, "velocity"),
        ({"amount_minor": 201_00, "typical_amount_minor": 20_00}, "amount"),
        ({"device_known": False}, "new_device"),
        ({"country": "FR", "country_known": False, "last_country": "FR"}, "new_country"),
        ({"country": "BR", "last_country_at": NOW - timedelta(hours=2)}, "impossible_travel"),
        ({"recipient_flagged": True}, "recipient_flagged"),
        (
            {"recipient_is_new_account": True, "recipient_new_senders_24h": 6},
            "mule_fan_in",
        ),
        (
            {"kind": "cash_out", "added_funds_24h_minor": 500_00, "amount_minor": 450_00},
            "in_then_out",
        ),
        (
            {"kind": "add_funds", "rail": "card", "amount_minor": 3_17, "tiny_card_adds_1h": 2},
            "card_testing",
        ),
        ({"account_age_days": 2.0, "device_other_accounts": 3}, "shared_device"),
        (
            {"recipient_is_new_payee": True, "paid_by_recipient": (NOW - timedelta(hours=5), 1)},
            "scam_opener",
        ),
        ({"address_new_accounts": 3, "address_counterparties": 1}, "address_ring"),
        ({"amount_minor": 9_800_00, "near_threshold_7d": [9_500_00, 9_900_00]}, "structuring"),
        ({"amount_minor": 2_950_00, "near_threshold_7d": [2_900_00, 2_990_00]}, "structuring"),
    ],
)
def test_each_rule_fires_on_its_own_signal(changes: dict[str, object], rule: str) -> None:
    """One changed signal, one rule hit, named."""
    assert rules_hit(**changes) == [rule]


@pytest.mark.parametrize(
    "changes",
    [
        {"count_1m": 5, "count_1h": 10},  # at the limits, not over them
        # A family of three joining together and paying each other from home.
        {"address_new_accounts": 2, "address_counterparties": 2},
        # Strangers on one address (a dorm, a carrier's NAT) who never paid each other.
        {"address_new_accounts": 20, "address_counterparties": 0},
        {"amount_minor": 99_00, "typical_amount_minor": 1_00},  # small, however unusual
        {"amount_minor": 199_00, "typical_amount_minor": 20_00},  # under 10x
        {"device_known": None, "country_known": None},  # no device id, no country: no signal
        {"country": "BR", "last_country_at": NOW - timedelta(hours=5)},  # a flight, not a jump
        # Five new friends paying a new one their share of a bill.
        {"recipient_is_new_account": True, "recipient_new_senders_24h": 5},
        {"added_funds_24h_minor": 500_00, "amount_minor": 450_00},  # to a payee paid before
        # Topping up to pay a new friend: the model's to judge, not a rule's.
        {"recipient_is_new_payee": True, "added_funds_24h_minor": 25_00, "amount_minor": 25_00},
        {"kind": "add_funds", "rail": "card", "amount_minor": 3_17, "tiny_card_adds_1h": 1},
        {"kind": "add_funds", "rail": "card", "amount_minor": 10_00, "tiny_card_adds_1h": 5},
        {"account_age_days": 2.0, "device_other_accounts": 2},  # a household's tablet
        {"account_age_days": 400.0, "device_other_accounts": 5},  # an old account's
        {"recipient_is_new_payee": True, "paid_by_recipient": (NOW - timedelta(hours=5), 1_00)},
        {"recipient_is_new_payee": True, "paid_by_recipient": (NOW - timedelta(hours=49), 1)},
        {"amount_minor": 9_800_00, "near_threshold_7d": [9_500_00]},  # two, not three
        {"amount_minor": 10_000_00, "near_threshold_7d": [9_500_00, 9_900_00]},  # not under
    ],
)
def test_rules_stay_quiet_just_short_of_their_thresholds(changes: dict[str, object]) -> None:
    """The edge of every threshold is on the allowed side."""
    assert rules_hit(**changes) == []


def test_the_verdict_grows_with_the_evidence() -> None:
    """A weak hit steps up, a strong one or a high score goes to review, two independent strong
    ones decline and freeze, a very high score declines without freezing."""
    new_device = dataclasses.replace(QUIET, device_known=False)
    assert decide(check_rules(new_device, RULES), 0.1, new_device, RULES).action is Action.STEP_UP
    fast = dataclasses.replace(QUIET, count_1m=9)
    assert decide(check_rules(fast, RULES), 0.1, fast, RULES).action is Action.REVIEW
    assert decide([], 0.6, QUIET, RULES).action is Action.REVIEW
    takeover = dataclasses.replace(
        QUIET, device_known=False, country="RU", country_known=False, count_1m=7
    )
    hits = check_rules(takeover, RULES)
    assert {h.rule for h in hits if h.strength is Strength.STRONG} >= {"velocity", "new_country"}
    verdict = decide(hits, 0.2, takeover, RULES)
    assert (verdict.action, verdict.freeze) == (Action.DECLINE, True)
    assert len(verdict.reasons) == len(hits)
    scored = decide([], 0.95, QUIET, RULES)
    assert (scored.action, scored.freeze) == (Action.DECLINE, False)
    assert decide([], 0.35, QUIET, RULES).action is Action.STEP_UP


def test_the_stricter_of_rules_and_model_decides_and_says_why() -> None:
    """A model band above the rules' verdict wins and is named; a lower one changes nothing."""
    fast = dataclasses.replace(QUIET, count_1m=9)
    hits = check_rules(fast, RULES)
    assert decide(hits, 0.35, fast, RULES).action is Action.REVIEW
    verdict = decide(hits, 0.95, fast, RULES)
    assert verdict.action is Action.DECLINE
    assert verdict.reasons[-1] == "model score 0.9500 at or above 0.9000"


def test_unset_bands_come_from_the_model_and_can_be_switched_off() -> None:
    """Bands left unset take the model's suggestions; model_decides=False only records."""
    shipped = RiskRules().with_model_bands({"step_up": 0.01, "review": 0.1, "decline": 0.4})
    assert (shipped.step_up_score, shipped.review_score, shipped.decline_score) == (
        0.01,
        0.1,
        0.4,
    )
    assert decide([], 0.2, QUIET, shipped).action is Action.REVIEW
    suggested = {"step_up": 0.0, "review": 0.0, "decline": 0.0}
    assert RiskRules(review_score=0.3).with_model_bands(suggested).review_score == 0.3
    quiet = RiskRules(model_decides=False).with_model_bands(suggested)
    assert decide([], 0.99, QUIET, quiet).action is Action.ALLOW
    assert decide([], 0.99, QUIET, RiskRules()).action is Action.ALLOW  # no bands, no model


def test_a_trip_abroad_is_a_step_up_at_most() -> None:
    """A new country and a quick change of country, on the user's own phone: a PIN, not a
    review (a flight or a VPN does the same)."""
    moved = dataclasses.replace(QUIET, country="JP", country_known=False, last_country_at=NOW)
    hits = check_rules(moved, RULES)
    assert {h.rule for h in hits} == {"new_country", "impossible_travel"}
    assert decide(hits, 0.1, moved, RULES).action is Action.STEP_UP


def test_two_hits_on_one_signal_do_not_freeze() -> None:
    """A young account on a farm's phone it never used: two hits, both about the device, so a
    review and no freeze."""
    farmed = dataclasses.replace(
        QUIET, device_known=False, account_age_days=1.0, device_other_accounts=5
    )
    hits = check_rules(farmed, RULES)
    assert {h.rule for h in hits} == {"new_device", "shared_device"}
    verdict = decide(hits, 0.1, farmed, RULES)
    assert (verdict.action, verdict.freeze) == (Action.REVIEW, False)


def test_a_new_device_in_a_new_country_is_a_takeover() -> None:
    """Both new at once: two independent strong signals, declined and frozen."""
    taken = dataclasses.replace(QUIET, device_known=False, country="RU", country_known=False)
    verdict = decide(check_rules(taken, RULES), 0.0, taken, RULES)
    assert (verdict.action, verdict.freeze) == (Action.DECLINE, True)


def test_report_candidates_for_cash_over_10000_a_day_and_suspicious_2000() -> None:
    """Cash-equivalent money past $10,000 in a business day is a CTR candidate; a suspicious
    movement of $2,000 or more a SAR candidate."""
    cash = dataclasses.replace(
        QUIET, kind="cash_out", amount_minor=4_000_00, cash_equivalent_today_minor=6_500_00
    )
    assert decide(check_rules(cash, RULES), 0.0, cash, RULES).aml == ("ctr",)
    big = dataclasses.replace(QUIET, amount_minor=2_000_00, device_known=False)
    assert decide(check_rules(big, RULES), 0.0, big, RULES).aml == ("sar",)
