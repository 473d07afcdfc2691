"""A proxy whose training loss becomes NaN/inf: `proxy.on_nonfinite_loss` fail (default) or skip, and the search
that goes on without the failed mixture."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from snakemake.utils import validate

from climb.core.config import SCHEMA_PATH, ConfigError, check_config
from climb.core.io import write_json
from climb.proxy.evaluate import evaluate_proxy
from climb.proxy.train import DivergedError, train_proxy
from climb.report.pages import read_search_history
from climb.search.pipeline import (
    fit_round_predictor,
    propose,
    read_objective,
    read_prior,
    sample_pool_mixture,
    settings_from_config,
    write_final_mixture,
)
from climb.search.sampling import tv_distance
from tests.test_proxy import SETTINGS, weights_file
from tests.test_search_pipeline import SEARCH, TOKENS, _score
from tests.test_tokenize import make_world, synthetic_docs

TARGETS = {"general": {"tasks": [{"task": "climb_heldout_mc", "metric": "acc"}]}}
EVAL_CONFIG = {"evaluation": {}, "targets": TARGETS}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("world"), synthetic_docs(30), {0: [0], 1: [1], 2: [2]})


def train_mixture(world, root: Path, **overrides) -> Path:
    """Train the proxy of ``root/search/pool/mix3`` as the rule does (proxy folder + training.json)."""
    mixdir = root / "search" / "pool" / "mix3"
    train_proxy(weights_file(mixdir / "weights.json", {0: 0.5, 2: 0.5}), world.bins, world.idxs, world.superclusters,
                [], world.tokenizer, str(mixdir / "proxy"), str(mixdir / "training.json"), {**SETTINGS, **overrides},
                seed=5, threads=1)
    return mixdir


@pytest.fixture
def inf_from_step_5(monkeypatch):
    """The model's loss turns to +inf from optimizer step 5 on (2 micro-batches a step in SETTINGS)."""
    from transformers import LlamaForCausalLM

    forward = LlamaForCausalLM.forward
    calls = []

    def poisoned(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        calls.append(1)
        if len(calls) > 2 * 4:
            out.loss = out.loss * float("inf")
        return out

    monkeypatch.setattr(LlamaForCausalLM, "forward", poisoned)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_schema_default_is_fail_and_skip_is_allowed():
    config = {"proxy": {}}
    validate(config, str(SCHEMA_PATH))
    assert config["proxy"]["on_nonfinite_loss"] == "fail"
    check_config({"proxy": {"on_nonfinite_loss": "skip"}})
    with pytest.raises(ConfigError, match="proxy.on_nonfinite_loss"):
        check_config({"proxy": {"on_nonfinite_loss": "ignore"}})


def test_fail_stops_with_the_mixture_folder_and_the_step(world, tmp_path, inf_from_step_5):
    """Default policy (key absent, as for direct callers): a clear error, and no output that looks complete."""
    with pytest.raises(DivergedError) as err:
        train_mixture(world, tmp_path)
    mixdir = tmp_path / "search" / "pool" / "mix3"
    message = str(err.value)
    assert message.startswith(f"{mixdir}: training loss is inf at step 5 of 12"), message
    assert "proxy.on_nonfinite_loss: skip" in message
    assert leftovers(mixdir) == ["weights.json"]  # no proxy folder, no training.json, no temporary


def test_fail_on_a_real_divergence(world, tmp_path):
    """No monkeypatching: a learning rate of 1e12 blows the weights up and the loss becomes NaN."""
    with pytest.raises(DivergedError, match=r"pool/mix3: training loss is nan at step \d+ of 12 \(lr 1e\+12\)"):
        train_mixture(world, tmp_path, lr=1e12, warmup_fraction=0.0, on_nonfinite_loss="fail")
    assert leftovers(tmp_path / "search" / "pool" / "mix3") == ["weights.json"]


def test_skip_records_the_failure_and_the_score_without_lm_eval(world, tmp_path, inf_from_step_5, monkeypatch):
    mixdir = train_mixture(world, tmp_path, on_nonfinite_loss="skip")
    training = json.loads((mixdir / "training.json").read_text())
    assert training["status"] == "failed"
    failed = training["failed"]
    assert failed["step"] == 5 and failed["loss"] == "inf" and failed["mixture"] == str(mixdir)
    assert "training loss is inf at step 5 of 12" in failed["reason"]
    assert training["step"] == [1, 2, 3, 4] and all(np.isfinite(training["loss"]))  # the finite steps before it
    # the proxy output exists (Snakemake needs it) but holds no model, only the same record
    assert leftovers(mixdir / "proxy") == ["training.json"]
    assert json.loads((mixdir / "proxy" / "training.json").read_text())["failed"] == failed
    assert not (mixdir / "proxy.ckpt").exists()

    import lm_eval.evaluator

    import climb.proxy.evaluate

    def no_lm_eval(*args, **kwargs):
        raise AssertionError("lm-eval must not run on a failed proxy")

    monkeypatch.setattr(climb.proxy.evaluate, "run_lm_eval", no_lm_eval)
    monkeypatch.setattr(lm_eval.evaluator, "evaluate", no_lm_eval)
    out = mixdir / "scores" / "general.json"
    evaluate_proxy(str(mixdir / "proxy"), "general", EVAL_CONFIG, str(out), seed=1)
    score = json.loads(out.read_text())
    assert score["objective"] is None and score["failed"] == failed and score["target"] == "general"
    assert read_objective(out) is None


def test_skip_on_a_real_divergence_and_a_healthy_proxy_is_ok(world, tmp_path):
    mixdir = train_mixture(world, tmp_path / "bad", lr=1e12, warmup_fraction=0.0, on_nonfinite_loss="skip")
    training = json.loads((mixdir / "training.json").read_text())
    assert training["status"] == "failed" and training["failed"]["loss"] == "nan"
    assert training["failed"]["step"] == len(training["step"]) + 1 >= 2
    mixdir = train_mixture(world, tmp_path / "good", on_nonfinite_loss="skip")
    training = json.loads((mixdir / "training.json").read_text())
    assert training["status"] == "ok" and "failed" not in training and len(training["step"]) == 12
    assert (mixdir / "proxy" / "model.safetensors").is_file()


# --- the search without the failed mixtures ---------------------------------------------------------------------


def failed_score(mixdir: Path, step: int = 7) -> None:
    """The score file the evaluation writes for a proxy that failed (through the real evaluate_proxy)."""
    record = {"step": step, "loss": "nan", "lr": 0.1, "mixture": str(mixdir), "reason": f"training loss is nan at step {step}"}
    write_json(mixdir / "proxy" / "training.json", {"status": "failed", "failed": record})
    evaluate_proxy(str(mixdir / "proxy"), "general", EVAL_CONFIG, str(mixdir / "scores" / "general.json"), seed=1)


def pool(tmp_path: Path, n: int, failed: set[int], seed: int = 11):
    prior_path = tmp_path / "prior.json"
    write_json(prior_path, {"prior": {k: v / sum(TOKENS.values()) for k, v in TOKENS.items()}, "tokens": TOKENS})
    prior = read_prior(prior_path)
    dirs = []
    for i in range(n):
        d = tmp_path / f"pool/mix{i}"
        sample_pool_mixture(str(prior_path), i, SEARCH, seed, str(d / "weights.json"))
        if i in failed:
            failed_score(d)
        else:
            _score(prior, d)
        dirs.append(d)
    return prior_path, prior, dirs


def paths(dirs):
    return [str(d / "weights.json") for d in dirs], [str(d / "scores/general.json") for d in dirs]


def test_search_steps_leave_failed_mixtures_out(tmp_path, caplog):
    bad = {2, 5, 9}
    prior_path, prior, dirs = pool(tmp_path, 12, bad)
    good = [d for i, d in enumerate(dirs) if i not in bad]
    out = tmp_path / "general"
    # predictor: the same model as one fitted on the successful mixtures alone; the summary counts the failed ones
    with caplog.at_level(logging.WARNING, logger="climb.search"):
        fit_round_predictor(str(prior_path), *paths(dirs), SEARCH, 11, 1, str(out / "all/predictor.txt"),
                            str(out / "all/predictor.json"))
    assert "3 of 12 mixtures failed (their proxy diverged) and are left out" in caplog.text
    fit_round_predictor(str(prior_path), *paths(good), SEARCH, 11, 1, str(out / "good/predictor.txt"),
                        str(out / "good/predictor.json"))
    assert (out / "all/predictor.txt").read_bytes() == (out / "good/predictor.txt").read_bytes()
    summary = json.loads((out / "all/predictor.json").read_text())
    assert summary["n_rows"] == 9 and summary["n_failed"] == 3
    assert summary["failed"] == [str(dirs[i]) for i in sorted(bad)]
    assert Path(summary["best_evaluated"]["mixture"]).parent in good
    # proposals: from the successful ones, and never close to a failed mixture (it would diverge again)
    propose(str(prior_path), str(out / "all/predictor.txt"), *paths(dirs), SEARCH, 11, 2, str(out / "round2.json"))
    proposals = json.loads((out / "round2.json").read_text())
    assert proposals["n_evaluated"] == 9 and proposals["n_failed"] == 3
    failed_w = np.stack([np.array([json.loads((dirs[i] / "weights.json").read_text())["weights"][k]
                                   for k in prior.names]) for i in sorted(bad)])
    dedup = settings_from_config(SEARCH).sampler.dedup_distance
    assert dedup > 0
    for m in proposals["mixtures"]:
        w = np.array([m["weights"][k] for k in prior.names])
        assert tv_distance(failed_w, w).min() >= dedup
    # final mixtures: the random baseline is the best successful mixture; climb runs on the successful ones
    for strategy in ("random", "climb"):
        final = write_final_mixture(strategy, "general", str(prior_path), SEARCH, 11, str(out / f"{strategy}.json"),
                                    model_path=str(out / "all/predictor.txt"), weights_paths=paths(dirs)[0],
                                    score_paths=paths(dirs)[1])
        alone = write_final_mixture(strategy, "general", str(prior_path), SEARCH, 11, str(out / f"{strategy}-g.json"),
                                    model_path=str(out / "all/predictor.txt"), weights_paths=paths(good)[0],
                                    score_paths=paths(good)[1])
        assert final["n_failed"] == 3 and alone["n_failed"] == 0
        assert final["weights"] == alone["weights"] and final["best_evaluated"] == alone["best_evaluated"]
    # the report's search history leaves them out too
    history = read_search_history([1] * 12, *paths(dirs), [int(k) for k in prior.names])
    assert len(history) == 9 and not set(history["mixture"]) & {str(dirs[i]) for i in bad}


def test_too_few_successful_mixtures_is_a_clear_error(tmp_path):
    prior_path, _, dirs = pool(tmp_path, 4, {0, 1, 3})
    with pytest.raises(ValueError, match=r"only 1 of 4 mixtures have a score \(3 failed: .*pool/mix0.*\); "
                                         r"the round 1 predictor needs at least 2"):
        fit_round_predictor(str(prior_path), *paths(dirs), SEARCH, 11, 1, str(tmp_path / "p.txt"),
                            str(tmp_path / "p.json"))
    assert not (tmp_path / "p.txt").exists()
    final = write_final_mixture("random", "general", str(prior_path), SEARCH, 11, str(tmp_path / "r.json"),
                                weights_paths=paths(dirs)[0], score_paths=paths(dirs)[1])
    assert final["best_evaluated"]["mixture"] == str(dirs[2] / "weights.json") and final["n_failed"] == 3
    failed_score(dirs[2])
    with pytest.raises(ValueError, match=r"only 0 of 4 mixtures have a score .*random final mixture needs at least 1"):
        write_final_mixture("random", "general", str(prior_path), SEARCH, 11, str(tmp_path / "r2.json"),
                            weights_paths=paths(dirs)[0], score_paths=paths(dirs)[1])
