"""The LightGBM predictor: mixture weights -> objective, with early stopping on a held-out fold.

Fit: a seeded fold of the training rows (``valid_fraction``) picks the number of boosting rounds by early
stopping; the model is then refit on every row for that many rounds, scaled by the row ratio. The
cross-validated Spearman is the out-of-fold rank correlation of K such fits (each with its own inner early
stopping, never looking at its test fold).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
from scipy.stats import spearmanr

from climb.io import atomic_open

MIN_ROWS_EARLY_STOPPING = 10


@dataclass(frozen=True)
class PredictorSettings:
    """LightGBM settings (the `search.predictor` config section)."""

    max_depth: int = 4
    num_leaves: int = 15
    learning_rate: float = 0.03
    lambda_l1: float = 0.1
    lambda_l2: float = 1.0
    min_child_samples: int = 5
    max_rounds: int = 5000
    early_stopping_rounds: int = 100
    valid_fraction: float = 0.2
    cv_folds: int = 5
    default_rounds: int = 200


def _params(settings: PredictorSettings, n_rows: int, seed: int) -> dict:
    return {
        "objective": "regression",
        "max_depth": settings.max_depth,
        "num_leaves": settings.num_leaves,
        "learning_rate": settings.learning_rate,
        "lambda_l1": settings.lambda_l1,
        "lambda_l2": settings.lambda_l2,
        # a small data set must still be able to split
        "min_child_samples": max(1, min(settings.min_child_samples, n_rows // 4)),
        "min_data_in_bin": 1,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbosity": -1,
    }


def _check(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"predictor needs X (n, D) and y (n,), got {x.shape} and {y.shape}")
    if len(y) < 2:
        raise ValueError(f"predictor needs at least 2 evaluated mixtures, got {len(y)}")
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise ValueError(f"objective is not finite at rows {bad.tolist()}")
    return x, y


def fit_booster(x: np.ndarray, y: np.ndarray, settings: PredictorSettings, seed: int) -> tuple[lgb.Booster, int]:
    """Early-stop on a seeded held-out fold, then refit on all rows; returns (booster, rounds)."""
    x, y = _check(x, y)
    n = len(y)
    params = _params(settings, n, seed)
    n_valid = int(round(n * settings.valid_fraction))
    if n >= MIN_ROWS_EARLY_STOPPING and n_valid >= 2:
        perm = np.random.default_rng(seed).permutation(n)
        valid, train = perm[:n_valid], perm[n_valid:]
        probe = lgb.train(
            _params(settings, len(train), seed),
            lgb.Dataset(x[train], y[train], params={"min_data_in_bin": 1}),
            num_boost_round=settings.max_rounds,
            valid_sets=[lgb.Dataset(x[valid], y[valid], params={"min_data_in_bin": 1})],
            callbacks=[lgb.early_stopping(settings.early_stopping_rounds, verbose=False)],
        )
        rounds = max(1, math.ceil(probe.best_iteration * n / len(train)))
    else:
        rounds = settings.default_rounds
    booster = lgb.train(params, lgb.Dataset(x, y, params={"min_data_in_bin": 1}), num_boost_round=rounds)
    return booster, rounds


def cross_validated_spearman(x: np.ndarray, y: np.ndarray, settings: PredictorSettings, seed: int) -> float | None:
    """Out-of-fold Spearman of K fits; None when there are too few rows (fewer than 2 per fold)."""
    x, y = _check(x, y)
    n = len(y)
    k = min(settings.cv_folds, n // 2)
    if k < 2 or np.ptp(y) == 0:
        return None
    perm = np.random.default_rng([seed, 1]).permutation(n)
    pred = np.empty(n)
    for fold in range(k):
        test = perm[fold::k]
        train = np.setdiff1d(perm, test)
        booster, _ = fit_booster(x[train], y[train], settings, seed + fold + 1)
        pred[test] = booster.predict(x[test])
    if np.ptp(pred) == 0:
        return 0.0
    return float(spearmanr(pred, y).statistic)


@dataclass
class Predictor:
    """A fitted predictor with what it was fitted on."""

    booster: lgb.Booster
    rounds: int
    n_rows: int
    cv_spearman: float | None
    settings: PredictorSettings

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.booster.predict(np.asarray(x, dtype=np.float64))

    def save(self, model_path: str | Path) -> None:
        """The LightGBM text model (atomically)."""
        with atomic_open(model_path, "w", encoding="utf-8") as fh:
            fh.write(self.booster.model_to_string())

    def summary(self) -> dict:
        return {"rounds": self.rounds, "n_rows": self.n_rows, "cv_spearman": self.cv_spearman,
                "settings": asdict(self.settings)}

    @staticmethod
    def load_booster(model_path: str | Path) -> lgb.Booster:
        return lgb.Booster(model_file=str(model_path))


def fit_predictor(x: np.ndarray, y: np.ndarray, settings: PredictorSettings, seed: int,
                  cross_validate: bool = True) -> Predictor:
    booster, rounds = fit_booster(x, y, settings, seed)
    cv = cross_validated_spearman(x, y, settings, seed) if cross_validate else None
    return Predictor(booster, rounds, len(y), cv, settings)
