"""Training the fraud model, offline: features of generated traffic, LightGBM trees, and a new
version saved beside the others (risk.model loads and serves it).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from billfold.risk.features import FEATURE_NAMES, RULES_ONLY, replay
from billfold.risk.training import synth
from billfold.risk.training.metrics import validation_summary

OPERATING_FPR = 0.01
# The first week only warms the history up: with no past, every device and payee looks new.
BURN_IN_DAYS = 7.0
MAX_ROUNDS = 500
EARLY_STOPPING_ROUNDS = 40
# Training keeps every fraud row and this share of legitimate rows, weighted back up: a quarter of
# the time for the same ranking, as legitimate rows are many and alike.
NEGATIVE_SAMPLE = 0.25
# A legitimate movement of an account under a day (a week) old weighs this much more in training:
# a new user blocked on their first day is a user lost, and they are few beside the years of
# history of everyone else, so unweighted the trees spend little effort telling them from the
# new accounts fraudsters open. Measured: it brought the unseen world's false blocks of accounts
# under a day old from 1.35% to 0.92% at the same recall (docs/risk.md).
NEW_USER_WEIGHT = ((1.0, 4.0), (7.0, 2.0))  # (age under, in days; weight)

Log = Callable[[str], None]


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class FeatureTable:
    """Feature rows of a generated dataset, one per event, with what the evaluation needs."""

    x: np.ndarray  # float32 (events, features)
    label: np.ndarray  # bool
    pattern: np.ndarray  # str, "" for legitimate events
    day: np.ndarray  # float64 days since synth.START
    amount_usd: np.ndarray  # float64
    behaviour: np.ndarray  # str: what a legitimate event was doing, "" for fraud


@dataclass(frozen=True)
class Windows:
    """Time windows in days since synth.START: train, then validate, then test, never mixed."""

    train_from: float
    train_to: float
    valid_to: float
    test_to: float

    def train(self, table: FeatureTable) -> np.ndarray:
        return (table.day >= self.train_from) & (table.day < self.train_to)

    def valid(self, table: FeatureTable) -> np.ndarray:
        return (table.day >= self.train_to) & (table.day < self.valid_to)

    def test(self, table: FeatureTable) -> np.ndarray:
        return (table.day >= self.valid_to) & (table.day < self.test_to)


def windows_for(days: int) -> Windows:
    """About 60% of the days to train, the next 13% to validate, the last 27% to test."""
    return Windows(BURN_IN_DAYS, round(days * 0.6), round(days * 0.73), float(days))


def build_table(dataset: synth.Dataset, log: Log = log_to_stderr) -> FeatureTable:
    """Replays the dataset in time order, computing each event's features before observing it."""
    started = time.perf_counter()
    events = dataset.events
    x = np.empty((len(events), len(FEATURE_NAMES)), dtype=np.float32)
    for i, row in enumerate(replay(dataset.users.values(), events)):
        x[i] = row
    start = synth.START.timestamp()
    table = FeatureTable(
        x=x,
        label=np.fromiter((e.label for e in events), dtype=bool, count=len(events)),
        pattern=np.array([e.pattern or "" for e in events]),
        day=np.fromiter(((e.ts.timestamp() - start) / 86400 for e in events), dtype=np.float64),
        amount_usd=np.fromiter((e.amount_minor / 100 for e in events), dtype=np.float64),
        behaviour=np.array([e.behaviour or "" for e in events]),
    )
    elapsed = time.perf_counter() - started
    log(f"features: {len(events):,} events x {len(FEATURE_NAMES)} in {elapsed:.0f} s")
    return table


def train_booster(
    table: FeatureTable, train: np.ndarray, valid: np.ndarray, seed: int
) -> lgb.Booster:
    """Gradient-boosted trees, stopped when average precision on the later window stops rising."""
    params = {
        "objective": "binary",
        "learning_rate": 0.08,
        "max_bin": 63,
        "num_leaves": 31,
        "min_data_in_leaf": 40,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "metric": "average_precision",
        "num_threads": 2,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }
    names = list(FEATURE_NAMES)
    kept = train & (
        table.label | (np.random.default_rng(seed).random(len(train)) < NEGATIVE_SAMPLE)
    )
    age = table.x[kept, FEATURE_NAMES.index("account_age_days")]
    new_user = np.select(
        [age < days for days, _ in NEW_USER_WEIGHT], [w for _, w in NEW_USER_WEIGHT], 1.0
    )
    weight = np.where(table.label[kept], 1.0, new_user / NEGATIVE_SAMPLE)
    train_set = lgb.Dataset(
        _for_the_model(table.x[kept]), table.label[kept], weight=weight, feature_name=names
    )
    valid_set = lgb.Dataset(_for_the_model(table.x[valid]), table.label[valid], reference=train_set)
    return lgb.train(
        params,
        train_set,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )


def _for_the_model(x: np.ndarray) -> np.ndarray:
    """`x` with the rules' own columns (features.RULES_ONLY) blank: no tree splits on them."""
    x = x.copy()
    x[:, [FEATURE_NAMES.index(name) for name in RULES_ONLY]] = np.nan
    return x


def predict(booster: lgb.Booster, x: np.ndarray) -> np.ndarray:
    return np.asarray(booster.predict(x, num_iteration=booster.best_iteration or None))


# Versioned storage.


def save_model(booster: lgb.Booster, out_dir: Path, metadata: dict[str, Any]) -> str:
    """Writes <version>.txt and <version>.json, then points CURRENT at them; returns the version."""
    text = booster.model_to_string(num_iteration=booster.best_iteration or None)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    version = f"{datetime.now(UTC):%Y%m%d}-{digest}"
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(out_dir / f"{version}.txt", text)
    document = {"version": version, **metadata, "feature_names": list(FEATURE_NAMES)}
    _write_atomically(out_dir / f"{version}.json", json.dumps(document, indent=2) + "\n")
    # A scorer loading concurrently sees the old CURRENT or the new one, never half a file.
    _write_atomically(out_dir / "CURRENT", version + "\n")
    return version


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


# The `train` command's work.


def train_and_save(
    users: int, days: int, seed: int, out_dir: Path, log: Log = log_to_stderr
) -> str:
    """Generates a world, trains on its earlier window, validates on the next, saves; returns the
    version."""
    log(f"generating {users:,} users over {days} days (seed {seed})")
    dataset = synth.generate(users, days, seed)
    table = build_table(dataset, log)
    windows = windows_for(days)
    train, valid = windows.train(table), windows.valid(table)
    rows, fraud = int(train.sum()), int(table.label[train].sum())
    span = f"[{windows.train_from:g}, {windows.train_to:g})"
    log(f"training on days {span}: {rows:,} rows, {fraud:,} fraud")
    started = time.perf_counter()
    booster = train_booster(table, train, valid, seed)
    log(f"trained {booster.best_iteration} rounds in {time.perf_counter() - started:.0f} s")
    summary = validation_summary(predict(booster, table.x[valid]), table.label[valid])
    log(
        f"validation: average precision {summary['average_precision']}, "
        f"recall at 1% FPR {summary['recall_at_fpr'][str(OPERATING_FPR)]}"
    )
    metadata = _metadata(dataset, table, windows, booster, summary)
    version = save_model(booster, out_dir, metadata)
    log(f"saved model {version} to {out_dir}")
    return version


def _metadata(
    dataset: synth.Dataset,
    table: FeatureTable,
    windows: Windows,
    booster: lgb.Booster,
    summary: dict[str, Any],
) -> dict[str, Any]:
    def when(day: float) -> str:
        return (synth.START + timedelta(days=day)).isoformat()

    train, valid = windows.train(table), windows.valid(table)
    thresholds = summary.pop("thresholds")
    return {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": {
            "generator": synth.__name__,
            "users": dataset.population,
            "days": dataset.days,
            "seed": dataset.seed,
        },
        "training_window": {"from": when(windows.train_from), "to": when(windows.train_to)},
        "validation_window": {"from": when(windows.train_to), "to": when(windows.valid_to)},
        "test_window": {"from": when(windows.valid_to), "to": when(windows.test_to)},
        "rows": {
            "train": int(train.sum()),
            "train_fraud": int(table.label[train].sum()),
            "valid": int(valid.sum()),
            "valid_fraud": int(table.label[valid].sum()),
        },
        "best_iteration": booster.best_iteration,
        "metrics": {"validation": summary},
        # Keyed by the share of legitimate validation movements above each; flag when score > it.
        "thresholds": thresholds,
        # Verdicts by the share of legitimate traffic each would touch on the validation window.
        "suggested_verdicts": {
            "step_up": {"above": thresholds["0.01"], "legit_share": 0.01},
            "review": {"above": thresholds["0.003"], "legit_share": 0.003},
            "decline": {"above": thresholds["0.001"], "legit_share": 0.001},
        },
    }
