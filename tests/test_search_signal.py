"""Noise floor, signal-to-noise, predictor skill and the verdict (climb.search.signal), through the file-level
search steps the rules call: on a planted objective the climb mixture is supported; on pure noise it is not, and
the natural mixture replaces it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from climb.search.pipeline import fit_round_predictor, propose, write_final_mixture
from climb.search.signal import LowSignalError, UnsupportedMixtureError, noise_floor, replicate_seed, round_signal

SHARES = np.array([0.35, 0.25, 0.2, 0.1, 0.06, 0.04])
POOL = 40
SEARCH = {"rounds": [POOL, 6], "candidates": 400, "dedup_distance": 0.02,
          "predictor": {"cv_folds": 4, "min_child_samples": 2},
          "signal": {"min_snr": 2.0, "min_skill": 0.3, "min_gain": 1.0, "max_concentration": 10.0,
                     "on_unsupported": "prior", "on_low_signal": "warn"}}
PLANTED = np.array([0.0, 0.5, 1.0, 0.2, -0.5, -1.0])  # the objective rises with domains 1 and 2


def write(path: Path, data: dict) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return str(path)


def search_files(tmp_path: Path, noise: float, signal: float, seed: int = 0):
    """Prior, POOL pool mixtures and 3 replicates scored by ``signal`` x a planted linear objective + noise."""
    rng = np.random.default_rng(seed)
    prior = write(tmp_path / "prior.json", {"prior": {str(i): s for i, s in enumerate(SHARES)}})
    weights, scores = [], []
    for i in range(POOL):
        w = rng.dirichlet(SHARES * 6)
        d = tmp_path / f"pool/mix{i}"
        weights.append(write(d / "weights.json", {"weights": {str(k): float(v) for k, v in enumerate(w)},
                                                  "source": "pool"}))
        scores.append(write(d / "scores/t.json", {"objective": float(signal * w @ PLANTED + rng.normal(0, noise))}))
    replicates = [write(tmp_path / f"pool/replicate{j}/scores/t.json",
                        {"objective": float(signal * SHARES @ PLANTED + rng.normal(0, noise))}) for j in range(3)]
    return prior, weights, scores, replicates


def final(tmp_path, prior, weights, scores, replicates, settings=SEARCH):
    summary = fit_round_predictor(prior, weights, scores, settings, 1, 1, str(tmp_path / "predictor.txt"),
                                  str(tmp_path / "predictor.json"), replicate_paths=replicates)
    result = write_final_mixture("climb", "t", prior, settings, 1, str(tmp_path / "final.json"),
                                 model_path=str(tmp_path / "predictor.txt"), weights_paths=weights,
                                 score_paths=scores, summary_path=str(tmp_path / "predictor.json"))
    return summary, result


def test_noise_floor_and_snr():
    noise = noise_floor([1.0, 1.2, None, 0.8])
    assert noise["n_replicates"] == 3 and noise["n_failed"] == 1 and noise["std"] == pytest.approx(0.2)
    assert round_signal(np.array([0.0, 0.4, 0.8]), noise)["snr"] == pytest.approx(2.0)
    assert noise_floor([1.0])["std"] is None and round_signal(np.array([1.0, 2.0]), noise_floor([1.0]))["snr"] is None
    assert replicate_seed(7, 0) == 7 and len({replicate_seed(7, j) for j in range(4)}) == 4
    assert noise["kind"] == "seeds" and noise["seed_std"] == noise["std"] and noise["paired_std"] is None


def test_paired_noise_leaves_out_what_a_seed_does_to_every_mixture():
    """Contrast j (a second mixture, seed j) pairs with replicate j: a seed's shift common to both is not noise."""
    noise = noise_floor([1.0, 1.2, 0.8], [1.1, 1.25, 0.95])  # differences 0.10, 0.05, 0.15
    assert noise["kind"] == "paired" and noise["n_pairs"] == 3
    assert noise["seed_std"] == pytest.approx(0.2) and noise["paired_std"] == pytest.approx(0.05 / np.sqrt(2))
    assert noise["std"] == noise["paired_std"]
    # a failed proxy drops its pair only; one pair left is no paired noise: back to the seeds' std
    assert noise_floor([1.0, None, 0.8], [1.1, 1.25, 0.95])["n_pairs"] == 2
    alone = noise_floor([1.0, 1.2, 0.8], [1.1, None, None])
    assert alone["kind"] == "seeds" and alone["std"] == pytest.approx(0.2)


def test_a_seed_shift_common_to_every_proxy_does_not_hide_the_signal(tmp_path):
    """Every search proxy shares one seed. Replicates whose seeds move the score by far more than the mixtures differ,
    but move a second mixture (the contrast) alike, leave the planted signal supported; measured against the seeds'
    std alone it is not."""
    prior, weights, scores, _ = search_files(tmp_path, noise=0.001, signal=1.0)
    rng = np.random.default_rng(5)
    shift = [0.0, 0.4, -0.3]  # what seed j does to every mixture's score (seed 0: the search's own)
    mix0 = json.loads(Path(weights[0]).read_text())["weights"]
    w0 = np.array([mix0[str(k)] for k in range(6)])
    base0 = json.loads(Path(scores[0]).read_text())["objective"]
    replicates = [write(tmp_path / f"pool/replicate{j}/scores/t.json",
                        {"objective": float(SHARES @ PLANTED + shift[j] + rng.normal(0, 0.001))}) for j in range(3)]
    contrasts = [scores[0]] + [write(tmp_path / f"pool/contrast{j}/scores/t.json",
                                     {"objective": float(base0 + shift[j] + rng.normal(0, 0.001))}) for j in (1, 2)]
    assert abs(base0 - w0 @ PLANTED) < 0.01
    summary = fit_round_predictor(prior, weights, scores, SEARCH, 1, 1, str(tmp_path / "p.txt"),
                                  str(tmp_path / "p.json"), replicate_paths=replicates, contrast_paths=contrasts)
    assert summary["noise"]["kind"] == "paired" and summary["noise"]["seed_std"] > 0.3
    assert summary["noise"]["std"] < 0.01 and summary["signal"]["snr"] > 10
    result = write_final_mixture("climb", "t", prior, SEARCH, 1, str(tmp_path / "final.json"),
                                 model_path=str(tmp_path / "p.txt"), weights_paths=weights, score_paths=scores,
                                 summary_path=str(tmp_path / "p.json"))
    assert result["supported"] is True, json.dumps(result["verdict"], indent=1)
    seeds_only = fit_round_predictor(prior, weights, scores, SEARCH, 1, 1, str(tmp_path / "s.txt"),
                                     str(tmp_path / "s.json"), replicate_paths=replicates)
    assert seeds_only["noise"]["kind"] == "seeds" and seeds_only["signal"]["snr"] < 2


def test_planted_signal_is_supported(tmp_path):
    summary, result = final(tmp_path, *search_files(tmp_path, noise=0.002, signal=1.0))
    assert summary["signal"]["snr"] > 10 and summary["skill"]["out_of_fold_spearman"] > 0.5
    assert result["supported"] is True, json.dumps(result["verdict"], indent=1)
    assert {r["check"] for r in result["verdict"]["reasons"]} == {"snr", "skill", "gain", "concentration"}
    assert "searched" not in result
    w = np.array([result["weights"][str(i)] for i in range(6)])
    assert w @ PLANTED > SHARES @ PLANTED  # better than the natural mixture on the planted objective


def test_pure_noise_is_not_supported_and_falls_back_to_the_prior(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="climb.search"):
        summary, result = final(tmp_path, *search_files(tmp_path, noise=0.01, signal=0.0))
    assert summary["signal"]["snr"] < 2
    assert result["supported"] is False
    failed = {r["check"] for r in result["verdict"]["reasons"] if not r["ok"]}
    assert "snr" in failed, result["verdict"]
    np.testing.assert_allclose([result["weights"][str(i)] for i in range(6)], SHARES, atol=1e-9)
    assert result["fallback"] == "prior" and result["searched"]["weights"] != result["weights"]
    assert "not supported" in caplog.text


def test_unsupported_policies(tmp_path):
    files = search_files(tmp_path, noise=0.01, signal=0.0)
    kept = {**SEARCH, "signal": {**SEARCH["signal"], "on_unsupported": "warn"}}
    _, result = final(tmp_path, *files, settings=kept)
    assert result["supported"] is False and "searched" not in result
    assert not np.allclose([result["weights"][str(i)] for i in range(6)], SHARES)
    failing = {**SEARCH, "signal": {**SEARCH["signal"], "on_unsupported": "fail"}}
    with pytest.raises(UnsupportedMixtureError, match="not supported"):
        final(tmp_path, *files, settings=failing)


def test_low_signal_after_round_one_warns_or_stops(tmp_path, caplog):
    prior, weights, scores, replicates = search_files(tmp_path, noise=0.01, signal=0.0)
    fit_round_predictor(prior, weights, scores, SEARCH, 1, 1, str(tmp_path / "r1.txt"), str(tmp_path / "r1.json"),
                        replicate_paths=replicates)
    args = (prior, str(tmp_path / "r1.txt"), weights, scores, SEARCH, 1, 2)
    with pytest.raises(LowSignalError, match="min_snr"):
        propose(*args, str(tmp_path / "p.json"), summary_path=str(tmp_path / "r1.json"),
                signal={**SEARCH["signal"], "on_low_signal": "stop"}, target="t")
    assert not (tmp_path / "p.json").exists()
    with caplog.at_level(logging.WARNING, logger="climb.search"):
        propose(*args, str(tmp_path / "p.json"), summary_path=str(tmp_path / "r1.json"), signal=SEARCH["signal"],
                target="t")
    assert "cannot tell these mixtures apart" in caplog.text and (tmp_path / "p.json").exists()


def test_realized_skill_of_a_measured_proposal_round(tmp_path):
    prior, weights, scores, replicates = search_files(tmp_path, noise=0.002, signal=1.0)
    fit_round_predictor(prior, weights, scores, SEARCH, 1, 1, str(tmp_path / "r1.txt"), str(tmp_path / "r1.json"),
                        replicate_paths=replicates)
    propose(prior, str(tmp_path / "r1.txt"), weights, scores, SEARCH, 1, 2, str(tmp_path / "proposals.json"))
    rng = np.random.default_rng(3)
    for i, m in enumerate(json.loads((tmp_path / "proposals.json").read_text())["mixtures"]):
        d = tmp_path / f"round2/mix{i}"
        weights.append(write(d / "weights.json", {**m, "source": "round2"}))
        w = np.array([m["weights"][str(k)] for k in range(6)])
        scores.append(write(d / "scores/t.json", {"objective": float(w @ PLANTED + rng.normal(0, 0.002))}))
    summary = fit_round_predictor(prior, weights, scores, SEARCH, 1, 2, str(tmp_path / "r2.txt"),
                                  str(tmp_path / "r2.json"), replicate_paths=replicates)
    assert summary["signal"]["n"] == 6
    assert summary["skill"]["realized_spearman"] is not None and summary["skill"]["realized_spearman"] > 0
