"""The LightGBM predictor against RegMix's published mixture experiments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from climb.search.predictor import PredictorSettings, cross_validated_spearman, fit_predictor
from tests.conftest import shared_data

TARGET = "metric/the_pile_pile_cc_val_loss"


def _load(folder, split):
    mixtures = pd.read_csv(folder / f"{split}_mixture_1m.csv")
    losses = pd.read_csv(folder / f"{split}_pile_loss_1m.csv")
    assert TARGET in losses.columns
    joined = mixtures.merge(losses, on="index", how="inner", validate="1:1")
    assert len(joined) == len(mixtures) == len(losses)
    x = joined[[c for c in mixtures.columns if c != "index"]].to_numpy(dtype=np.float64)
    return x, joined[TARGET].to_numpy(dtype=np.float64)


@pytest.mark.slow
def test_regmix_pile_cc_spearman():
    """Fit on the 512 training rows only (early stopping on a split of them); rank the 256 test rows."""
    folder = shared_data("regmix")
    x_train, y_train = _load(folder, "train")
    x_test, y_test = _load(folder, "test")
    assert x_train.shape == (512, 17) and x_test.shape == (256, 17)
    rhos = []
    for seed in range(5):
        predictor = fit_predictor(x_train, y_train, PredictorSettings(kind="trees"), seed, cross_validate=False)
        rhos.append(spearmanr(predictor.predict(x_test), y_test).statistic)
    print("Spearman per seed:", np.round(rhos, 4), "mean", np.mean(rhos))
    assert np.mean(rhos) >= 0.98


def test_cross_validated_spearman_tracks_signal():
    rng = np.random.default_rng(0)
    x = rng.dirichlet(np.ones(6), size=80)
    y = -((x - np.array([0.5, 0.3, 0.1, 0.05, 0.05, 0.0])) ** 2).sum(axis=1)
    noise = rng.normal(size=80)
    assert cross_validated_spearman(x, y, PredictorSettings(), 0) > 0.8
    assert abs(cross_validated_spearman(x, noise, PredictorSettings(), 0)) < 0.4
    assert cross_validated_spearman(x[:3], y[:3], PredictorSettings(), 0) is None


def test_predictor_round_trips_as_text(tmp_path):
    from climb.search.predictor import Predictor

    rng = np.random.default_rng(1)
    x = rng.dirichlet(np.ones(5), size=40)
    y = x[:, 0] - x[:, 1]
    p = fit_predictor(x, y, PredictorSettings(), 3)
    p.save(tmp_path / "m.txt")
    again = Predictor.load_booster(tmp_path / "m.txt")
    np.testing.assert_allclose(again.predict(x), p.predict(x))
    q = fit_predictor(x, y, PredictorSettings(), 3)
    q.save(tmp_path / "n.txt")
    assert (tmp_path / "m.txt").read_bytes() == (tmp_path / "n.txt").read_bytes()


def test_predictor_rejects_bad_rows():
    x = np.full((4, 3), 1 / 3)
    with pytest.raises(ValueError, match="not finite at rows \\[2\\]"):
        fit_predictor(x, np.array([0.1, 0.2, np.nan, 0.3]), PredictorSettings(), 0)
    with pytest.raises(ValueError, match="at least 2"):
        fit_predictor(x[:1], np.array([0.1]), PredictorSettings(), 0)


def test_round_trip_of_both_kinds(tmp_path):
    from climb.search.predictor import Predictor

    rng = np.random.default_rng(1)
    x = rng.dirichlet(np.ones(5), size=30)
    y = x[:, 0] - x[:, 1]
    for kind in ("trees", "linear"):
        p = fit_predictor(x, y, PredictorSettings(kind=kind), 3)
        p.save(tmp_path / f"{kind}.txt")
        assert p.kind == kind
        np.testing.assert_allclose(Predictor.load_booster(tmp_path / f"{kind}.txt").predict(x), p.predict(x))


def test_auto_keeps_the_kind_that_ranks_held_out_rows_better():
    """Few points of a linear objective: ridge ranks far better than early-stopped trees, and auto measures that;
    on an objective with a sharp interaction trees win and are kept."""
    rng = np.random.default_rng(0)
    x = rng.dirichlet(np.ones(6) * 2, size=14)
    linear = x @ np.array([0.0, 0.5, 1.0, 0.2, -0.5, -1.0]) + rng.normal(0, 0.002, 14)
    p = fit_predictor(x, linear, PredictorSettings(), 0)
    assert p.kind == "linear" and p.cv_spearman_by_kind["linear"] > p.cv_spearman_by_kind["trees"]
    assert p.cv_spearman == p.cv_spearman_by_kind["linear"] and p.summary()["kind"] == "linear"
    x = rng.dirichlet(np.ones(4), size=200)
    step = np.where((x[:, 0] > 0.3) & (x[:, 1] > 0.2), 1.0, 0.0) + rng.normal(0, 0.01, 200)
    p = fit_predictor(x, step, PredictorSettings(), 0)
    assert p.kind == "trees", p.cv_spearman_by_kind
