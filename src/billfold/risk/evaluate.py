"""How well rules, the model, and both together catch fraud they were not trained on.

The evaluation regenerates the world the current model was trained on (same users, days, seed),
then measures on the test window, which is later than anything the model saw. It also retrains the
model once per fraud pattern with that pattern removed from training and validation, and measures
each such model on that pattern alone: a stand-in for the fraud nobody has seen yet.

Thresholds are never chosen on the test window: every operating point is the score above which 1%
of the validation window's legitimate movements fall, so the false-block rate on the test window is
an honest out-of-sample figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from billfold.risk import synth
from billfold.risk.features import FEATURE_INDEX
from billfold.risk.model import (
    FPRS,
    OPERATING_FPR,
    FeatureTable,
    Log,
    Scorer,
    average_precision,
    build_table,
    log_to_stderr,
    predict,
    recall_at_fpr,
    threshold_at_fpr,
    train_booster,
    windows_for,
)

SCORERS = ("rules", "model", "both", "served")


@dataclass(frozen=True)
class RuleThresholds:
    """The issue's rule thresholds, each configurable."""

    transfers_per_minute: int = 5
    transfers_per_hour: int = 10
    amount_to_median: float = 10.0
    min_history_for_median: int = 3
    fan_in_new_senders: int = 3
    money_in_out_hours: float = 24.0
    money_in_out_share: float = 0.5
    structuring_repeats: int = 1


@dataclass(frozen=True)
class Rule:
    name: str
    points: int  # Severity: BLOCK_POINTS or more in total blocks the movement.
    reason: str


RULES: tuple[Rule, ...] = (
    Rule("velocity_minute", 3, "more than 5 outgoing movements in a minute, this one included"),
    Rule("velocity_hour", 2, "more than 10 outgoing movements in an hour, this one included"),
    Rule("amount_vs_typical", 1, "outgoing amount over 10x the user's 30-day median"),
    Rule("new_device_new_country", 3, "a device and a country never seen for this user"),
    Rule("impossible_travel", 2, "the country changed within 4 hours of the last movement"),
    Rule("mule_fan_in", 3, "a first-time recipient who got money from 3+ new accounts in 24 h"),
    Rule("money_in_then_out", 1, "half or more of the last 24 hours' add-funds leaving at once"),
    Rule("structuring", 3, "an amount just under $10,000 or $3,000, again within 7 days"),
)
# Two weak signals together (2 + 1) block, as does any strong one alone. A weak signal alone is
# left to the model, which sees it among its features.
BLOCK_POINTS = 3
RULE_POINTS = np.array([rule.points for rule in RULES], dtype=np.float64)


def rule_hits(x: np.ndarray, t: RuleThresholds = RuleThresholds()) -> np.ndarray:
    """Which rules each row trips: bool (rows, len(RULES)), computed from the feature columns."""

    def col(name: str) -> np.ndarray:
        return x[:, FEATURE_INDEX[name]]

    new_payee = (col("is_p2p") == 1) & (col("is_new_recipient") == 1)
    outgoing = (col("is_p2p") == 1) | (col("is_cash_out") == 1)
    near_threshold = (col("amount_near_10k") == 1) | (col("amount_near_3k") == 1)
    money_in = (col("hours_since_last_add") <= t.money_in_out_hours) & (col("add_sum_24h") > 0)
    hits = (
        outgoing & (col("out_count_1m") + 1 > t.transfers_per_minute),
        outgoing & (col("out_count_1h") + 1 > t.transfers_per_hour),
        outgoing
        & (col("events_30d") >= t.min_history_for_median)
        & (col("amount_to_median_30d") > t.amount_to_median),
        (col("device_seen_before") == 0) & (col("country_seen_before") == 0),
        col("impossible_travel") == 1,
        new_payee & (col("recipient_new_senders_24h") >= t.fan_in_new_senders),
        ((col("is_cash_out") == 1) | new_payee)
        & money_in
        & (col("amount_usd") >= t.money_in_out_share * col("add_sum_24h")),
        near_threshold & (col("near_threshold_7d") >= t.structuring_repeats),
    )
    return np.column_stack(hits)


def rule_points(x: np.ndarray) -> np.ndarray:
    """Rules alone as a score: the severity points of the rules each row trips."""
    return np.asarray(rule_hits(x) @ RULE_POINTS)


def combine(model_scores: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Both: the rules' block verdict overrides; below it, the model's score decides.

    A hard rule hit is a decision with a reason, as it will be online. The blocking combinations
    touch about 0.04% of legitimate traffic, so they cost the model little of a 1% false-positive
    budget while keeping the rules' catches on patterns the model never saw. In development,
    max(model, fraud rate per number of rules hit) and a noisy-OR did worse: weak rules alone
    (10x the median, money in then out) fire on several percent of legitimate movements, and
    their false hits pushed the model's threshold up. See docs/risk.md.
    """
    return np.where(points >= BLOCK_POINTS, 1.0, model_scores)


def evaluate(
    models_dir: Path | None = None, seed: int | None = None, log: Log = log_to_stderr
) -> dict[str, Any]:
    """The full report: the current model on the later window, then one model per held-out
    pattern. `seed` evaluates on a different world than the model was trained on."""
    scorer = Scorer.load(models_dir)
    data = scorer.metadata["data"]
    seed = data["seed"] if seed is None else seed
    log(
        f"model {scorer.version}; generating {data['users']:,} users, {data['days']} days, "
        f"seed {seed}"
    )
    table = build_table(synth.generate(data["users"], data["days"], seed), log)
    points = rule_points(table.x)
    report: dict[str, Any] = {
        "model_version": scorer.version,
        "data": {**data, "seed": seed},
        "rules": {rule.name: {"points": rule.points, "reason": rule.reason} for rule in RULES},
        "block_points": BLOCK_POINTS,
        "windows": _window_dates(table),
        "later_window": _measure(table, points, booster_scores(scorer.booster), None),
        "held_out": {},
    }
    for pattern in synth.PATTERNS:
        log(f"held out: {pattern}")
        booster = _train_without(table, pattern, seed)
        report["held_out"][pattern] = _measure(table, points, booster_scores(booster), pattern)
    report["targets"] = _targets(report)
    return report


def booster_scores(booster: lgb.Booster) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: predict(booster, x)


def _window_dates(table: FeatureTable) -> dict[str, str]:
    windows = windows_for(int(table.day.max()) + 1)

    def day(offset: float) -> str:
        return (synth.START + timedelta(days=offset)).date().isoformat()

    return {
        "train": f"{day(windows.train_from)}..{day(windows.train_to)}",
        "valid": f"{day(windows.train_to)}..{day(windows.valid_to)}",
        "test": f"{day(windows.valid_to)}..{day(windows.test_to)}",
    }


def _train_without(table: FeatureTable, pattern: str, seed: int) -> lgb.Booster:
    windows = windows_for(int(table.day.max()) + 1)
    keep = table.pattern != pattern
    return train_booster(table, windows.train(table) & keep, windows.valid(table) & keep, seed)


def _measure(
    table: FeatureTable,
    points: np.ndarray,
    model_scores: Callable[[np.ndarray], np.ndarray],
    held_out: str | None,
) -> dict[str, Any]:
    """Rules, model and both on the test window; only `held_out` fraud there when one is given."""
    windows = windows_for(int(table.day.max()) + 1)
    valid, test = windows.valid(table), windows.test(table)
    if held_out is not None:
        valid = valid & (table.pattern != held_out)
        test = test & (~table.label | (table.pattern == held_out))
    scored = {}
    for name, rows in (("valid", valid), ("test", test)):
        model = model_scores(table.x[rows])
        both = combine(model, points[rows])
        scored[name] = {"rules": points[rows], "model": model, "both": both, "served": both}
    result: dict[str, Any] = {
        "fraud_events": int(table.label[test].sum()),
        "legit_events": int((~table.label[test]).sum()),
    }
    if result["fraud_events"] == 0:
        # A small world can leave a pattern without any event in the test window.
        return result | dict.fromkeys(SCORERS)
    # "served" is how the engine decides online (risk.rules.decide): the model at its own
    # threshold (its metadata's bands come from the model alone), and the rules' blocks on top.
    model_threshold = threshold_at_fpr(scored["valid"]["model"][~table.label[valid]], OPERATING_FPR)
    for scorer in SCORERS:
        result[scorer] = _metrics(
            scored["valid"][scorer],
            table.label[valid],
            scored["test"][scorer],
            table.label[test],
            table.amount_usd[test],
            model_threshold if scorer == "served" else None,
        )
    return result


def _metrics(
    valid_scores: np.ndarray,
    valid_labels: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    amounts: np.ndarray,
    threshold: float | None = None,
) -> dict[str, float]:
    """Ranking figures, and what is blocked above `threshold` (default: the score above which
    1% of the validation window's legitimate movements fall)."""
    if threshold is None:
        threshold = threshold_at_fpr(valid_scores[~valid_labels], OPERATING_FPR)
    flagged = scores > threshold
    fraud_money = amounts[labels].sum()
    metrics = {"average_precision": average_precision(scores, labels)}
    for fpr in FPRS:
        metrics[f"recall_at_{fpr:.1%}_fpr"] = recall_at_fpr(scores, labels, fpr)
    metrics["recall_at_threshold"] = float(flagged[labels].mean())
    metrics["false_block_rate"] = float(flagged[~labels].mean())
    metrics["money_caught"] = float(amounts[labels & flagged].sum() / fraud_money)
    return {name: round(value, 4) for name, value in metrics.items()}


def _targets(report: dict[str, Any]) -> dict[str, Any]:
    """The issue's two targets, checked on the figures above."""
    key = f"recall_at_{OPERATING_FPR:.1%}_fpr"
    both_later = report["later_window"]["both"]
    later = both_later[key] if both_later else None
    per_pattern: dict[str, bool | None] = {}
    served: dict[str, bool | None] = {}
    for pattern, result in report["held_out"].items():
        if result["both"] is None:
            per_pattern[pattern] = served[pattern] = None
            continue
        better = max(result["rules"][key], result["model"][key])
        per_pattern[pattern] = result["both"][key] >= better
        served[pattern] = all(
            result["served"][measure] >= max(result["rules"][measure], result["model"][measure])
            for measure in ("recall_at_threshold", "money_caught")
        )
    return {
        "both_recall_at_1%_fpr_later_window": later,
        "both_recall_at_1%_fpr_at_least_0.8": later >= 0.8 if later is not None else None,
        "held_out_both_at_least_best_single": per_pattern,
        "held_out_served_catches_at_least_best_single": served,
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as two plain-text tables."""
    data, later = report["data"], report["later_window"]
    lines = [
        f"model {report['model_version']}: {data['users']:,} users, {data['days']} days, "
        f"seed {data['seed']}; test window {report['windows']['test']}",
        f"later window: {later['fraud_events']:,} fraud / {later['legit_events']:,} legitimate",
        f"{'':7}{'AP':>7}{'R@0.1%':>8}{'R@1%':>8}{'R@5%':>8}{'blocked':>9}{'false-block':>13}"
        f"{'money':>8}",
    ]
    for scorer in SCORERS:
        m = later[scorer]
        if m is None:
            continue
        lines.append(
            f"{scorer:7}{m['average_precision']:7.3f}{_pct(m['recall_at_0.1%_fpr']):>8}"
            f"{_pct(m['recall_at_1.0%_fpr']):>8}{_pct(m['recall_at_5.0%_fpr']):>8}"
            f"{_pct(m['recall_at_threshold']):>9}{_pct(m['false_block_rate'], 2):>13}"
            f"{_pct(m['money_caught']):>8}"
        )
    lines += ["", "held out of training (recall at 1% FPR | money caught at the threshold):"]
    lines.append(f"{'pattern':20}{'fraud':>6}{'rules':>15}{'model':>15}{'both':>15}  both>=best")
    for pattern, result in report["held_out"].items():
        if result["both"] is None:
            lines.append(f"{pattern:20}{0:>6}  (no such fraud in the test window)")
            continue
        cells = "".join(
            f"{_pct(result[s]['recall_at_1.0%_fpr']):>7} |{_pct(result[s]['money_caught']):>6}"
            for s in ("rules", "model", "both")
        )
        ok = report["targets"]["held_out_both_at_least_best_single"][pattern]
        lines.append(f"{pattern:20}{result['fraud_events']:>6}{cells}  {'yes' if ok else 'NO'}")
    lines += [
        "",
        "held out, as served (blocked at each one's own threshold | money caught; served: the",
        "model at its own threshold with the rules' blocks on top, as risk.rules.decide):",
        f"{'pattern':20}{'fraud':>6}{'rules':>15}{'model':>15}{'served':>15}  served>=best",
    ]
    for pattern, result in report["held_out"].items():
        if result["served"] is None:
            continue
        cells = "".join(
            f"{_pct(result[s]['recall_at_threshold']):>7} |{_pct(result[s]['money_caught']):>6}"
            for s in ("rules", "model", "served")
        )
        ok = report["targets"]["held_out_served_catches_at_least_best_single"][pattern]
        lines.append(f"{pattern:20}{result['fraud_events']:>6}{cells}  {'yes' if ok else 'NO'}")
    return "\n".join(lines)


def _pct(value: float, digits: int = 1) -> str:
    return f"{value * 100:.{digits}f}%"
