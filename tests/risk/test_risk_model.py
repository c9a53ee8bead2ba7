"""The model: trained and versioned by the command, loaded without pickle, scored one row at a time,
and evaluated against the rules on a later window and on held-out patterns."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
from typer.testing import CliRunner

from billfold.risk import synth
from billfold.risk.cli import risk_app
from billfold.risk.evaluate import (
    BLOCK_POINTS,
    RULES,
    combine,
    format_report,
    rule_hits,
    rule_points,
)
from billfold.risk.features import FEATURE_INDEX, FEATURE_NAMES
from billfold.risk.metrics import average_precision, recall_at_fpr, threshold_at_fpr
from billfold.risk.model import VERSION_PATTERN, Scorer, build_table
from billfold.risk.serving import COUNT_CAP


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model trained by the `train` command into a directory of its own."""
    out = tmp_path_factory.mktemp("models")
    args = ["train", "--users", "2000", "--days", "30", "--seed", "11", "--out", str(out)]
    result = CliRunner().invoke(risk_app, args)
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_a_version_its_metadata_and_current(models_dir: Path) -> None:
    """The command prints the version it wrote; CURRENT names it; metadata lists the features."""
    version = (models_dir / "CURRENT").read_text().strip()
    assert VERSION_PATTERN.match(version)
    assert (models_dir / f"{version}.txt").read_text().startswith("tree\n")
    metadata = json.loads((models_dir / f"{version}.json").read_text())
    assert metadata["feature_names"] == list(FEATURE_NAMES)
    assert metadata["data"] == {
        "generator": "billfold.risk.synth",
        "users": 2000,
        "days": 30,
        "seed": 11,
    }
    assert metadata["training_window"]["to"] <= metadata["validation_window"]["from"]
    assert set(metadata["thresholds"]) == {"0.001", "0.003", "0.01", "0.05"}
    assert metadata["suggested_verdicts"]["step_up"]["legit_share"] == 0.01


def test_scorer_scores_one_row_as_the_batch_does(models_dir: Path) -> None:
    """One-row scores are probabilities equal to LightGBM's batch predictions."""
    scorer = Scorer.load(models_dir)
    table = build_table(synth.generate(400, 14, 2), log=lambda _: None)
    rows = table.x[-200:].astype(np.float64)
    one_by_one = np.array([scorer.score(row.tolist()) for row in rows])
    assert np.all((one_by_one >= 0) & (one_by_one <= 1))
    # The single-row fast path is the same model, to the last bits LightGBM's batch gives.
    assert np.allclose(one_by_one, scorer.score_many(rows), rtol=0, atol=1e-12)
    # Each thread scores with its own fast predictor.
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda row: scorer.score(row.tolist()), rows))
    assert threaded == one_by_one.tolist()
    with pytest.raises(ValueError, match="got 3 features, the model expects"):
        scorer.score([1.0, 2.0, 3.0])


def test_the_top_features_are_the_largest_shap_contributions_of_the_shipped_model() -> None:
    """The five features that pushed a score most, either way, are LightGBM's pred_contrib
    values of largest size, with the row's values (a missing one as None); the
    contributions of all features and the bias sum to the raw score."""
    scorer = Scorer.load()
    table = build_table(synth.generate(200, 14, 5), log=lambda _: None)
    rows = table.x[-20:].astype(np.float64)
    expected = scorer.booster.predict(rows, pred_contrib=True)
    for row, contributions in zip(rows, expected, strict=True):
        top = scorer.top_features(row.tolist())
        order = np.argsort(-np.abs(contributions[:-1]), kind="stable")[:5]
        assert [p.name for p in top] == [FEATURE_NAMES[i] for i in order]
        assert [p.contribution for p in top] == pytest.approx(contributions[order], abs=1e-6)
        assert [p.value for p in top] == [None if np.isnan(row[i]) else row[i] for i in order]
        raw = np.log(scorer.score(row.tolist()) / (1 - scorer.score(row.tolist())))
        assert contributions.sum() == pytest.approx(raw, abs=1e-9)


def test_scorer_refuses_a_current_that_names_no_version(tmp_path: Path) -> None:
    """CURRENT cannot point the loader at an arbitrary path."""
    (tmp_path / "CURRENT").write_text("../../etc/passwd\n")
    with pytest.raises(ValueError, match=r"names '\.\./\.\./etc/passwd', not a model version"):
        Scorer.load(tmp_path)


def test_scorer_refuses_a_model_trained_on_other_features() -> None:
    """A model whose feature names differ from FEATURE_NAMES is rejected, naming the difference."""
    x = np.random.default_rng(0).random((200, 3))
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_threads": 1},
        lgb.Dataset(x, x[:, 0] > 0.5, feature_name=["a", "b", "c"]),
        num_boost_round=2,
    )
    with pytest.raises(ValueError, match="expects other features"):
        Scorer(booster, {"version": "20250101-0123456789", "thresholds": {}})


def test_the_shipped_model_matches_the_features_this_code_computes() -> None:
    """The model in the package loads, and its feature names are exactly FEATURE_NAMES."""
    scorer = Scorer.load()
    assert scorer.metadata["feature_names"] == list(FEATURE_NAMES)
    assert 0 <= scorer.score([0.0] * len(FEATURE_NAMES)) <= 1


@pytest.mark.parametrize("feature", ["lifetime_events", "times_paid_recipient"])
def test_the_online_counts_stop_above_every_split_of_the_shipped_model(feature: str) -> None:
    """Online, the lifetime count of a user's movements and the count of their earlier payments
    to the recipient stop at COUNT_CAP (each counted row is a read). The model must not tell
    counts at or above it apart, or the cap would change scores: a retrained model that does
    needs a higher cap."""
    tree_info = Scorer.load().booster.dump_model()["tree_info"]
    index = FEATURE_INDEX[feature]
    splits: list[float] = []

    def walk(node: dict[str, Any]) -> None:
        if "split_feature" in node:
            if node["split_feature"] == index:
                splits.append(node["threshold"])
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in tree_info:
        walk(tree["tree_structure"])
    assert splits, f"the model no longer splits on {feature}: the count could go"
    assert max(splits) < COUNT_CAP


def test_metrics_on_known_rankings() -> None:
    """Average precision and recall at a false-positive rate, ties never flagged."""
    labels = np.array([True, True, False, False, False])
    assert average_precision(np.array([0.9, 0.8, 0.3, 0.2, 0.1]), labels) == 1.0
    assert average_precision(np.array([0.1, 0.2, 0.3, 0.8, 0.9]), labels) == pytest.approx(
        (1 / 4 + 2 / 5) / 2
    )
    negatives = np.arange(1000) / 1000
    assert threshold_at_fpr(negatives, 0.01) == 0.989
    tied = np.array([0.5, 0.5, 0.5, 0.1])
    assert recall_at_fpr(tied, np.array([True, False, False, False]), 0.34) == 0.0


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
