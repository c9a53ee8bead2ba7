"""Training: the command trains and versions a model; the metrics it is judged by."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from billfold.risk.features import FEATURE_NAMES
from billfold.risk.model import VERSION_PATTERN
from billfold.risk.training.metrics import average_precision, recall_at_fpr, threshold_at_fpr


def test_train_writes_a_version_its_metadata_and_current(models_dir: Path) -> None:
    """The command prints the version it wrote; CURRENT names it; metadata lists the features."""
    version = (models_dir / "CURRENT").read_text().strip()
    assert VERSION_PATTERN.match(version)
    assert (models_dir / f"{version}.txt").read_text().startswith("tree\n")
    metadata = json.loads((models_dir / f"{version}.json").read_text())
    assert metadata["feature_names"] == list(FEATURE_NAMES)
    assert metadata["data"] == {
        "generator": "billfold.risk.training.synth",
        "users": 2000,
        "days": 30,
        "seed": 11,
    }
    assert metadata["training_window"]["to"] <= metadata["validation_window"]["from"]
    assert set(metadata["thresholds"]) == {"0.001", "0.003", "0.01", "0.05"}
    assert metadata["suggested_verdicts"]["step_up"]["legit_share"] == 0.01


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
