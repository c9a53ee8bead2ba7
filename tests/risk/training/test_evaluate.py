"""The evaluation: rules, model and both against each other on a later window and on held-out
patterns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from billfold.risk.features import FEATURE_INDEX, FEATURE_NAMES
from billfold.risk.training import synth
from billfold.risk.training.cli import risk_app
from billfold.risk.training.evaluate import (
    BLOCK_POINTS,
    RULES,
    combine,
    format_report,
    rule_hits,
    rule_points,
)


def test_rules_fire_on_the_patterns_they_name() -> None:
    """Each rule reads its features; strong hits block on their own, a weak one does not."""
    rows = np.zeros((8, len(FEATURE_NAMES)))
    rows[:, FEATURE_INDEX["is_p2p"]] = 1
    rows[:, FEATURE_INDEX["device_seen_before"]] = 1
    rows[:, FEATURE_INDEX["country_seen_before"]] = 1
    rows[:, FEATURE_INDEX["account_age_days"]] = 100
    rows[0, FEATURE_INDEX["out_count_1m"]] = 5
    fan_in = ["is_new_recipient", "recipient_is_new_account", "recipient_new_senders_24h"]
    rows[1, [FEATURE_INDEX[name] for name in fan_in]] = [1, 1, 6]
    rows[2, [FEATURE_INDEX["amount_near_10k"], FEATURE_INDEX["near_threshold_7d"]]] = 1
    rows[3, [FEATURE_INDEX["events_30d"], FEATURE_INDEX["amount_to_median_30d"]]] = [5, 12]
    card = ["is_p2p", "is_add_funds", "rail_card", "amount_tiny", "tiny_add_count_1h"]
    rows[4, [FEATURE_INDEX[name] for name in card]] = [0, 1, 1, 1, 2]
    farm = ["account_age_days", "device_other_users"]
    rows[5, [FEATURE_INDEX[name] for name in farm]] = [3, 3]
    opener = [
        "is_new_recipient",
        "recipient_paid_user_before",
        "recipient_last_to_user_usd",
        "hours_since_recipient_paid_user",
    ]
    rows[6, [FEATURE_INDEX[name] for name in opener]] = [1, 1, 0.25, 5]
    ring = ["account_age_days", "address_new_accounts", "address_counterparties"]
    rows[7, [FEATURE_INDEX[name] for name in ring]] = [12, 3, 1]
    names = [rule.name for rule in RULES]
    hits = rule_hits(rows)
    fired = [[names[i] for i in np.flatnonzero(row)] for row in hits]
    assert fired == [
        ["velocity_minute"],
        ["mule_fan_in"],
        ["structuring"],
        ["amount_vs_typical"],
        ["card_testing"],
        ["shared_device"],
        ["scam_opener"],
        ["address_ring"],
    ]
    points = rule_points(rows)
    assert list(points >= BLOCK_POINTS) == [True, True, True, False, True, True, True, True]
    assert list(combine(np.full(8, 0.2), points)) == [1.0, 1.0, 1.0, 0.2, 1.0, 1.0, 1.0, 1.0]


def test_five_new_friends_paying_a_new_account_are_no_mule_fan_in() -> None:
    """Six new accounts paying a new one is a mule's collection; five splitting a bill is not."""
    rows = np.zeros((2, len(FEATURE_NAMES)))
    fan_in = ["is_p2p", "is_new_recipient", "recipient_is_new_account", "account_age_days"]
    rows[:, [FEATURE_INDEX[name] for name in fan_in]] = [1, 1, 1, 0.5]
    rows[:, FEATURE_INDEX["recipient_new_senders_24h"]] = [4, 5]  # before this sender
    assert list(rule_hits(rows)[:, [r.name for r in RULES].index("mule_fan_in")]) == [False, True]


def test_evaluate_reports_both_worlds_bands_behaviours_and_the_clock(models_dir: Path) -> None:
    """`evaluate --json` measures every scorer on both worlds' later windows and per held-out
    pattern, false blocks by age band and behaviour, and the verdicts the clock changes."""
    result = CliRunner().invoke(risk_app, ["evaluate", "--models", str(models_dir), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["worlds"]) == {"trained", "unseen"}
    for world in report["worlds"].values():
        later = world["later_window"]
        assert later["fraud_events"] > 0
        for scorer in ("rules", "model", "both", "served"):
            metrics = later[scorer]
            assert set(metrics) >= {"average_precision", "recall_at_1.0%_fpr", "false_block_rate"}
            assert all(0 <= value <= 1 for value in metrics.values())
        assert set(world["held_out"]) == set(synth.PATTERNS)
        friction = world["friction"]
        assert list(friction["by_age"]) == ["< 1 day", "1-7 days", "7-30 days", "> 30 days"]
        assert set(friction["by_behaviour"]) == set(synth.BEHAVIOURS)
        assert (
            sum(band["events"] for band in friction["by_age"].values())
            == (friction["overall"]["events"])
        )
        # Served, the later window's false blocks are the legitimate movements blocked.
        assert friction["overall"]["blocked"] == pytest.approx(
            later["served"]["false_block_rate"], abs=1e-4
        )
    assert report["worlds"]["unseen"]["params"]["amount_scale"] > 1
    # No feature reads the clock: moving every clock changes no verdict.
    assert report["time_shift"]["changed"] == 0
    assert report["targets"]["time_shift"] is True
    assert "false_block_per_band" in report["targets"]["trained"]
    assert "targets (issue 24)" in format_report(report)
