"""The model online: loaded without pickle, scored one row at a time, explained by its largest
contributions, and refused when it does not fit this code."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from billfold.risk.features import FEATURE_INDEX, FEATURE_NAMES
from billfold.risk.model import Scorer
from billfold.risk.serving import COUNT_CAP
from billfold.risk.training import synth
from billfold.risk.training.train import build_table


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
