"""The predictor: mixture weights -> objective. LightGBM trees (the paper's), a ridge regression, or whichever of
the two ranks held-out mixtures better (``kind: auto``, the default).

Trees: a seeded fold of the training rows (``valid_fraction``) picks the number of boosting rounds by early
stopping; the model is then refit on every row for that many rounds, scaled by the row ratio. Linear: ridge
regression on the weights, its penalty chosen by leave-one-out (scikit-learn's RidgeCV). The cross-validated
Spearman is the out-of-fold rank correlation of K fits (each never looking at its test fold). With the few points
of a proxy-scale round (8-14 mixtures over 6+ domains) trees stop after a couple of splits and rank poorly; auto
measures both and keeps the one with the higher out-of-fold Spearman.

Files: ``predictor.txt`` is the LightGBM text model, or a JSON object ``{"kind": "linear", ...}``; :func:`load_model`
reads either.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from climb.core.io import atomic_open

if TYPE_CHECKING:  # imported where used: ~2 s of LightGBM + scikit-learn that most search jobs never need
    import lightgbm as lgb

MIN_ROWS_EARLY_STOPPING = 10
KINDS = ("auto", "trees", "linear")
RIDGE_ALPHAS = np.logspace(-6, 2, 17)


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
    kind: str = "auto"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"search.predictor.kind must be one of {KINDS}, got {self.kind!r}")


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
    import lightgbm as lgb

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


@dataclass
class LinearModel:
    """Ridge regression of the objective on the weights."""

    coef: np.ndarray
    intercept: float
    alpha: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.coef + self.intercept

    def num_feature(self) -> int:
        return len(self.coef)

    def to_json(self) -> str:
        return json.dumps({"kind": "linear", "coef": [float(c) for c in self.coef], "intercept": self.intercept,
                           "alpha": self.alpha}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LinearModel:
        data = json.loads(text)
        return cls(np.array(data["coef"], dtype=np.float64), float(data["intercept"]), float(data["alpha"]))


def fit_linear(x: np.ndarray, y: np.ndarray) -> LinearModel:
    """Ridge regression, the penalty picked by leave-one-out among RIDGE_ALPHAS."""
    from sklearn.linear_model import RidgeCV

    x, y = _check(x, y)
    model = RidgeCV(alphas=RIDGE_ALPHAS).fit(x, y)
    return LinearModel(np.asarray(model.coef_, dtype=np.float64), float(model.intercept_), float(model.alpha_))


def load_model(model_path: str | Path) -> lgb.Booster | LinearModel:
    """A saved predictor: the LightGBM text model or the linear model's JSON."""
    import lightgbm as lgb

    text = Path(model_path).read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        return LinearModel.from_json(text)
    return lgb.Booster(model_str=text)


def cross_validated_spearman(x: np.ndarray, y: np.ndarray, settings: PredictorSettings, seed: int,
                             kind: str = "trees") -> float | None:
    """Out-of-fold Spearman of K fits of ``kind`` (trees or linear); None when there are too few rows (fewer than 2
    per fold)."""
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
        model = fit_linear(x[train], y[train]) if kind == "linear" else \
            fit_booster(x[train], y[train], settings, seed + fold + 1)[0]
        pred[test] = model.predict(x[test])
    if np.ptp(pred) == 0:
        return 0.0
    from scipy.stats import spearmanr

    return float(spearmanr(pred, y).statistic)


@dataclass
class Predictor:
    """A fitted predictor with what it was fitted on."""

    model: lgb.Booster | LinearModel
    rounds: int
    n_rows: int
    cv_spearman: float | None
    settings: PredictorSettings
    kind: str = "trees"
    cv_spearman_by_kind: dict[str, float | None] | None = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(np.asarray(x, dtype=np.float64))

    def save(self, model_path: str | Path) -> None:
        """The LightGBM text model, or the linear model's JSON (atomically)."""
        with atomic_open(model_path, "w", encoding="utf-8") as fh:
            fh.write(self.model.to_json() if self.kind == "linear" else self.model.model_to_string())

    def summary(self) -> dict:
        return {"kind": self.kind, "rounds": self.rounds, "n_rows": self.n_rows, "cv_spearman": self.cv_spearman,
                "cv_spearman_by_kind": self.cv_spearman_by_kind, "settings": asdict(self.settings)}

    @staticmethod
    def load_booster(model_path: str | Path) -> lgb.Booster | LinearModel:
        return load_model(model_path)


def choose_kind(skills: dict[str, float | None]) -> str:
    """The kind with the higher out-of-fold Spearman; trees (the paper's) on a tie or when neither is measured."""
    trees, linear = skills.get("trees"), skills.get("linear")
    if linear is not None and (trees is None or linear > trees):
        return "linear"
    return "trees"


def fit_predictor(x: np.ndarray, y: np.ndarray, settings: PredictorSettings, seed: int,
                  cross_validate: bool = True) -> Predictor:
    """Fit the configured kind; ``auto`` cross-validates both kinds (whatever ``cross_validate`` says) and keeps
    the one that ranks held-out rows better."""
    by_kind = None
    if settings.kind == "auto":
        by_kind = {k: cross_validated_spearman(x, y, settings, seed, k) for k in ("trees", "linear")}
        kind = choose_kind(by_kind)
        cv = by_kind[kind]
    else:
        kind = settings.kind
        cv = cross_validated_spearman(x, y, settings, seed, kind) if cross_validate else None
    if kind == "linear":
        model, rounds = fit_linear(x, y), 0
    else:
        model, rounds = fit_booster(x, y, settings, seed)
    return Predictor(model, rounds, len(y), cv, settings, kind, by_kind)
