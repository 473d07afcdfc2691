"""The file-level search steps (what the rules run), driven by hand against a simulated evaluator."""

from __future__ import annotations

import json

import numpy as np
import pytest

from climb.core.io import write_json
from climb.search.core import run_search
from climb.search.pipeline import (
    fit_round_predictor,
    propose,
    read_prior,
    read_weights,
    sample_pool_mixture,
    settings_from_config,
    split_proposal,
    write_final_mixture,
)

SEARCH = {"rounds": [12, 6, 4], "candidates": 2000, "cap": 5.0, "predictor": {"cv_folds": 3}}
TOKENS = {"0": 5000, "1": 3000, "2": 1000, "3": 700, "5": 300}  # id 4 was pruned: ids need not be contiguous


def objective(w: np.ndarray) -> np.ndarray:
    return -((w - np.array([0.1, 0.2, 0.4, 0.2, 0.1])) ** 2).sum(axis=-1)


def _score(prior, mixdir):
    w = read_weights(mixdir / "weights.json", prior)
    write_json(mixdir / "scores" / "general.json", {"objective": float(objective(w))})


def _run_dag_by_hand(tmp_path, seed=11):
    prior_path = tmp_path / "prior.json"
    write_json(prior_path, {"prior": {k: v / sum(TOKENS.values()) for k, v in TOKENS.items()}, "tokens": TOKENS})
    prior = read_prior(prior_path)
    rounds = SEARCH["rounds"]
    dirs = []
    for i in range(rounds[0]):
        d = tmp_path / f"pool/mix{i}"
        sample_pool_mixture(str(prior_path), i, SEARCH, seed, str(d / "weights.json"))
        _score(prior, d)
        dirs.append(d)
    for r in range(1, len(rounds) + 1):
        if r >= 2:
            proposals = tmp_path / f"general/round{r}/proposals.json"
            propose(str(prior_path), str(tmp_path / f"general/round{r - 1}/predictor.txt"),
                    [str(d / "weights.json") for d in dirs], [str(d / "scores/general.json") for d in dirs],
                    SEARCH, seed, r, str(proposals))
            for i in range(rounds[r - 1]):
                d = tmp_path / f"general/round{r}/mix{i}"
                split_proposal(str(proposals), i, str(d / "weights.json"))
                _score(prior, d)
                dirs.append(d)
        fit_round_predictor(str(prior_path), [str(d / "weights.json") for d in dirs],
                            [str(d / "scores/general.json") for d in dirs], SEARCH, seed, r,
                            str(tmp_path / f"general/round{r}/predictor.txt"),
                            str(tmp_path / f"general/round{r}/predictor.json"))
    final = tmp_path / "general/climb/final_mixture.json"
    write_final_mixture("climb", "general", str(prior_path), SEARCH, seed, str(final),
                        model_path=str(tmp_path / f"general/round{len(rounds)}/predictor.txt"),
                        weights_paths=[str(d / "weights.json") for d in dirs],
                        score_paths=[str(d / "scores/general.json") for d in dirs])
    return prior, json.loads(final.read_text())


def test_dag_steps_equal_the_library_loop(tmp_path):
    prior, final = _run_dag_by_hand(tmp_path)
    assert set(final["weights"]) == set(TOKENS)
    assert sum(final["weights"].values()) == pytest.approx(1.0)
    # the same search in memory, with the same seed, gives the same final mixture
    result = run_search(objective, prior, settings_from_config(SEARCH), "climb", seed=11)
    np.testing.assert_allclose([final["weights"][k] for k in prior.names], result.weights, atol=1e-9)
    assert final["predicted"] == pytest.approx(result.predicted)
    # the rounds narrow in on the optimum (noise-free evaluator): later rounds are much better than the pool,
    # and the final mixture beats the best pool mixture
    regret = -result.scores
    assert regret[result.round_of > 0].mean() < 0.5 * regret[result.round_of == 0].mean()
    assert -objective(np.array([final["weights"][k] for k in prior.names])) < regret[result.round_of == 0].min()
    summary = json.loads((tmp_path / "general/round3/predictor.json").read_text())
    assert summary["n_rows"] == 22 and summary["cv_spearman"] > 0.5


def test_same_inputs_same_bytes(tmp_path):
    _run_dag_by_hand(tmp_path / "a")
    _run_dag_by_hand(tmp_path / "b")
    for rel in ("pool/mix11/weights.json", "general/round2/proposals.json", "general/round3/predictor.txt",
                "general/round3/predictor.json", "general/climb/final_mixture.json"):
        a = (tmp_path / "a" / rel).read_bytes()
        b = (tmp_path / "b" / rel).read_bytes().replace(str(tmp_path / "b").encode(), str(tmp_path / "a").encode())
        assert a == b, rel


def test_pool_mixture_is_stable_when_the_pool_grows(tmp_path):
    write_json(tmp_path / "prior.json", {"prior": {"0": 0.5, "1": 0.3, "2": 0.2}})
    sample_pool_mixture(str(tmp_path / "prior.json"), 3, SEARCH, 1, str(tmp_path / "a.json"))
    sample_pool_mixture(str(tmp_path / "prior.json"), 3, {**SEARCH, "rounds": [64, 32]}, 1, str(tmp_path / "b.json"))
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


@pytest.mark.parametrize("content, message", [
    ({"weights": {"0": 0.5}}, "sum to 0.5"),
    ({"weights": {"9": 1.0}}, "weights key '9': super-cluster 9 is not in"),
    ({"weights": {"0": -0.5, "1": 1.5}}, "weights key '0' is -0.5"),
    ({"w": {}}, "expected"),
])
def test_bad_weights_name_the_file(tmp_path, content, message):
    write_json(tmp_path / "prior.json", {"prior": {"0": 0.5, "1": 0.5}})
    write_json(tmp_path / "weights.json", content)
    with pytest.raises(ValueError, match=message) as err:
        read_weights(tmp_path / "weights.json", read_prior(tmp_path / "prior.json"))
    assert "weights.json" in str(err.value)


@pytest.mark.parametrize("content, message", [
    ({}, "no non-empty `prior`"),
    ({"prior": {"a": 1.0, "b": 0.0}}, "must be integers"),
    ({"prior": {"0": 1.0, "1": -1.0}}, "share of super-cluster 1"),
    ({"prior": {"0": 1.0}}, "at least 2 domains"),
])
def test_bad_prior_names_the_file(tmp_path, content, message):
    write_json(tmp_path / "prior.json", content)
    with pytest.raises(ValueError, match=message) as err:
        read_prior(tmp_path / "prior.json")
    assert "prior.json" in str(err.value)


def test_missing_objective_names_the_file(tmp_path):
    from climb.search.pipeline import read_objective

    write_json(tmp_path / "general.json", {"objective": None, "metrics": {}})
    with pytest.raises(ValueError, match="general.json.*objective"):
        read_objective(tmp_path / "general.json")
