"""The learned half of the risk engine, online: load a versioned model and score one movement in
well under a millisecond. Training it is offline work (risk.training.train).

Models are stored as LightGBM's native text format next to a JSON file of metadata, and loaded with
`lightgbm.Booster(model_file=...)`: nothing is ever unpickled, so a model file can at worst give
wrong scores, never run code. `CURRENT` names the version in use; training writes it last.
"""

from __future__ import annotations

import ctypes
import json
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import lightgbm.basic as lgb_basic
import numpy as np

from billfold.risk.features import FEATURE_NAMES

MODELS_DIR = Path(__file__).with_name("models")
VERSION_PATTERN = re.compile(r"^\d{8}-[0-9a-f]{10}$")
# The features an assessment keeps of what pushed its score (Scorer.top_features).
TOP_FEATURES = 5


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
