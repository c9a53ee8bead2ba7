"""Ranking and threshold metrics of fraud scores, for training's validation and the evaluation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

FPRS = (0.001, 0.01, 0.05)


# Metrics. Scores are compared with "greater than": a movement is flagged when score > threshold,
# so ties at the threshold are never flagged and a stated false-positive rate is never exceeded.


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the precision-recall curve, stepping at each distinct score (as scikit-learn)."""
    positives = int(labels.sum())
    if positives == 0:
        raise ValueError("average precision needs at least one positive example, got none")
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], labels[order].astype(np.float64)
    tp, fp = np.cumsum(hits), np.cumsum(1 - hits)
    last_of_tie = np.r_[np.flatnonzero(np.diff(ranked) != 0), len(ranked) - 1]
    tp, fp = tp[last_of_tie], fp[last_of_tie]
    recall = tp / positives
    precision = tp / (tp + fp)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def threshold_at_fpr(negative_scores: np.ndarray, fpr: float) -> float:
    """The lowest threshold that flags at most `fpr` of the negatives."""
    if len(negative_scores) == 0:
        raise ValueError("a false-positive rate needs negative examples, got none")
    allowed = math.floor(fpr * len(negative_scores))
    ranked = np.sort(negative_scores)[::-1]
    return float(ranked[allowed]) if allowed < len(ranked) else -math.inf


def recall_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float) -> float:
    threshold = threshold_at_fpr(scores[~labels], fpr)
    return float(np.mean(scores[labels] > threshold))


def validation_summary(scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    negatives = scores[~labels]
    return {
        "average_precision": round(average_precision(scores, labels), 4),
        "recall_at_fpr": {str(f): round(recall_at_fpr(scores, labels, f), 4) for f in FPRS},
        "thresholds": {str(f): threshold_at_fpr(negatives, f) for f in (0.001, 0.003, 0.01, 0.05)},
    }
