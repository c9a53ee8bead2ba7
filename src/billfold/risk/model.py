"""The learned half of the risk engine: train a LightGBM model on generated traffic, version it,
load it back and score one movement in well under a millisecond.

Models are stored as LightGBM's native text format next to a JSON file of metadata, and loaded with
`lightgbm.Booster(model_file=...)`: nothing is ever unpickled, so a model file can at worst give
wrong scores, never run code. `CURRENT` names the version in use; training writes it last.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import lightgbm as lgb
import lightgbm.basic as lgb_basic
import numpy as np

from billfold.risk import synth
from billfold.risk.features import FEATURE_NAMES, RULES_ONLY, replay
from billfold.risk.metrics import validation_summary

MODELS_DIR = Path(__file__).with_name("models")
VERSION_PATTERN = re.compile(r"^\d{8}-[0-9a-f]{10}$")
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
# The features an assessment keeps of what pushed its score (Scorer.top_features).
TOP_FEATURES = 5

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


def current_version(models_dir: Path) -> str:
    version = (models_dir / "CURRENT").read_text().strip()
    if not VERSION_PATTERN.match(version):
        raise ValueError(f"CURRENT in {models_dir} names '{version}', not a model version")
    return version


# lightgbm's handle on its own C library (the package's, not a second copy).
_LGBM = lgb_basic._LIB  # type: ignore[attr-defined]


class SingleRowPredictor:
    """LightGBM's fast path for one row (`LGBM_BoosterPredictForMatSingleRowFast`).

    `Booster.predict` parses its parameters and builds a predictor on every call, which costs
    several times the prediction itself for one row; this sets them up once, and each row is then
    one C call into the same library, with the same result (tests/risk/test_model.py). It uses
    the C API through lightgbm's own loaded library. Not for sharing between threads.

    With `contributions`, a call gives each feature's SHAP contribution to the raw score (and
    the bias last), as `Booster.predict(row, pred_contrib=True)` does: `contributions_of`.
    """

    def __init__(self, booster: lgb.Booster, *, contributions: bool = False) -> None:
        self._booster = booster  # the config refers to the booster: keep it alive as long
        self._columns = booster.num_feature()
        self._config = ctypes.c_void_p()
        self._row = np.zeros(self._columns, dtype=np.float64)
        self._out = np.zeros(self._columns + 1 if contributions else 1, dtype=np.float64)
        self._length = ctypes.c_int64()
        kind = (
            lgb_basic._C_API_PREDICT_CONTRIB if contributions else lgb_basic._C_API_PREDICT_NORMAL
        )
        lgb_basic._safe_call(
            _LGBM.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(kind),
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(booster.best_iteration or -1),  # as Booster.predict's default
                ctypes.c_int(lgb_basic._C_API_DTYPE_FLOAT64),
                ctypes.c_int32(self._columns),
                lgb_basic._c_str("num_threads=1"),
                ctypes.byref(self._config),
            )
        )
        self._row_pointer = self._row.ctypes.data_as(ctypes.c_void_p)
        self._out_pointer = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))

    def __call__(self, features: Sequence[float]) -> float:
        self._predict(features)
        return float(self._out[0])

    def contributions_of(self, features: Sequence[float]) -> np.ndarray:
        """Each feature's contribution to the raw score, then the bias (a copy)."""
        self._predict(features)
        return self._out.copy()

    def _predict(self, features: Sequence[float]) -> None:
        self._row[:] = features
        lgb_basic._safe_call(
            _LGBM.LGBM_BoosterPredictForMatSingleRowFast(
                self._config, self._row_pointer, ctypes.byref(self._length), self._out_pointer
            )
        )

    def __del__(self) -> None:
        if self._config:
            _LGBM.LGBM_FastConfigFree(self._config)


@dataclass(frozen=True)
class Pushed:
    """A feature that pushed a score: its value (None: missing) and its contribution to the
    raw score (log-odds; positive towards fraud)."""

    name: str
    value: float | None
    contribution: float


class Scorer:
    """A loaded model: `score(features)` for one row in `FEATURE_NAMES` order, in [0, 1]."""

    def __init__(self, booster: lgb.Booster, metadata: dict[str, Any]) -> None:
        names = tuple(booster.feature_name())
        if names != FEATURE_NAMES:
            missing = sorted(set(FEATURE_NAMES) ^ set(names))
            raise ValueError(
                f"model {metadata.get('version')!r} expects other features than this code "
                f"computes (differing: {missing or 'order only'})"
            )
        self.booster = booster
        self.metadata = metadata
        # One fast predictor per thread: each holds buffers that one call at a time may use.
        self._per_thread = threading.local()
        self.version: str = metadata["version"]
        self.thresholds: dict[str, float] = metadata["thresholds"]
        # The scores above which the model suggests each verdict (risk.rules.RiskRules bands).
        self.bands: dict[str, float] = {
            verdict: band["above"] for verdict, band in metadata["suggested_verdicts"].items()
        }

    @classmethod
    def load(cls, models_dir: Path | None = None, version: str | None = None) -> Scorer:
        """Loads `version` (default: the one CURRENT names) from `models_dir` (default: shipped)."""
        directory = models_dir or MODELS_DIR
        version = version or current_version(directory)
        if not VERSION_PATTERN.match(version):
            raise ValueError(f"model version '{version}' is not of the form YYYYMMDD-<10 hex>")
        metadata = json.loads((directory / f"{version}.json").read_text())
        booster = lgb.Booster(model_file=str(directory / f"{version}.txt"))
        return cls(booster, metadata)

    def score(self, features: Sequence[float]) -> float:
        """The fraud probability of one movement. Single-threaded: one row gains nothing from
        threads and pays for their start-up."""
        self._check(features)
        predictor = getattr(self._per_thread, "predictor", None)
        if predictor is None:
            predictor = self._per_thread.predictor = SingleRowPredictor(self.booster)
        return predictor(features)

    def _check(self, features: Sequence[float]) -> None:
        if len(features) != len(FEATURE_NAMES):
            raise ValueError(
                f"got {len(features)} features, the model expects {len(FEATURE_NAMES)}"
            )

    def top_features(self, features: Sequence[float], count: int = TOP_FEATURES) -> list[Pushed]:
        """The `count` features that moved this movement's score most, either way, largest
        first: TreeSHAP contributions to the raw score (log-odds), which sum with the bias to
        it. Single-threaded, about 2.4 ms a row on the shipped model's 497 trees, 80 times a
        score (docs/risk.md): the engine asks only for movements it held or declined."""
        self._check(features)
        explainer = getattr(self._per_thread, "explainer", None)
        if explainer is None:
            explainer = self._per_thread.explainer = SingleRowPredictor(
                self.booster, contributions=True
            )
        contributions = explainer.contributions_of(features)[:-1]
        largest = np.argsort(-np.abs(contributions), kind="stable")[:count]
        return [
            Pushed(
                FEATURE_NAMES[i],
                None if math.isnan(features[i]) else float(features[i]),
                round(float(contributions[i]), 6),
            )
            for i in largest
        ]

    def score_many(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(rows))


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
            "generator": "billfold.risk.synth",
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
