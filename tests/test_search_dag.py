"""The search in the DAG: round structure from config (dry runs) and the CI pipeline's search outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from tests.conftest import CI_CONFIG, ROOT, job_counts, snakemake


def _dry_counts(workdir, search: dict | None = None, configfile=None) -> dict[str, int]:
    """Dry-run job counts; ``search`` is merged over the config as an extra config file."""
    args = ["-n", "--quiet", "rules"]
    if search is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        override = workdir / "search-override.yaml"
        override.write_text(yaml.safe_dump({"search": search}))
        args += ["--configfile", *([str(configfile)] if configfile else []), str(override)]
        configfile = None
    return job_counts(snakemake(workdir, *args, configfile=configfile).stdout)


def test_paper_schedule_lists_every_proxy_of_every_round(tmp_path):
    counts = _dry_counts(tmp_path, {"rounds": [64, 32, 16], "baselines": [], "replicates": 3})
    # and the noise floor: 3 replicates of the natural mixture, and pool/mix0 again with replicate 1's and 2's seeds
    assert counts["train_proxy"] == 64 + 32 + 16 + 3 + 2
    assert counts["evaluate_proxy"] == 64 + 32 + 16 + 3 + 2  # one target: general
    assert counts["natural_replicate"] == 3 and counts["contrast_replicate"] == 2
    assert counts["sample_pool_mixture"] == 64
    assert counts["fit_round_predictor"] == 3
    assert counts["propose_round"] == 2
    assert counts["split_proposal"] == 32 + 16
    assert counts["final_mixture"] == 1


def test_baselines_share_the_pool(tmp_path):
    """regmix and random use the first sum(rounds) pool mixtures: climb's round 1 is trained once for all."""
    counts = _dry_counts(tmp_path, {"rounds": [64, 32, 16], "baselines": ["regmix", "random", "natural", "uniform"],
                                    "replicates": 0})
    assert counts["sample_pool_mixture"] == 112
    assert counts["train_proxy"] == 112 + 32 + 16
    assert counts["fit_regmix_predictor"] == 1
    assert counts["final_mixture"] == 5


def _dry_run_field(workdir, field: str, default: int, *args: str) -> dict[str, set[int]]:
    """{rule: the values of one numeric field (priority, threads) over its jobs} in the embedded default's dry run."""
    import re

    out = snakemake(workdir, "-n", *args, configfile=None).stdout
    values: dict[str, set[int]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        if m := re.match(r"(?:local)?rule (\w+):", block):
            found = re.search(rf"^\s+{field}: (-?\d+)", block, re.M)
            values.setdefault(m.group(1), set()).add(int(found.group(1)) if found else default)
    return values


def test_search_loop_goes_before_side_work(tmp_path):
    """Each round waits for the last proxy of the one before: the loop's jobs have the higher priority, the baselines'
    final mixtures the default; no job waits for a report, so the reports have the lowest."""
    priority = _dry_run_field(tmp_path, "priority", 0, "--cores", "2")
    loop = ("sample_pool_mixture", "natural_replicate", "contrast_replicate", "train_proxy", "evaluate_proxy")
    assert all(priority[rule] == {1} for rule in loop), priority
    assert priority["final_mixture"] == {0} and priority["dedup"] == {0}
    # the 2-thread jobs the first proxy waits for go before 1-thread ones that would keep a core from them
    assert priority["fit_kmeans"] == {1} and priority["train_tokenizer"] == {1}
    reports = [rule for rule in priority if rule.startswith("report_")]
    assert len(reports) == 7 and all(priority[rule] == {-1} for rule in reports), priority


@pytest.mark.parametrize(("cores", "embed", "dedup"), [(2, 1, 1), (16, 4, 2), (64, 8, 8)])
def test_a_local_run_spreads_its_cores_over_the_shards_and_dedup_groups(tmp_path, cores, embed, dedup):
    """The embedded default's 4 embed jobs and 8 dedup groups can all run at once: each gets the cores // jobs (1 to
    8), so on 2 cores the groups run side by side instead of one at a time with 2 threads each."""
    threads = _dry_run_field(tmp_path, "threads", 1, "--cores", str(cores))
    assert threads["embed"] == {embed} and threads["dedup"] == {dedup}, threads
    assert threads["fit_kmeans"] == {2}  # one job, as before


def test_paper_scale_config_if_present(tmp_path):
    path = ROOT / "configs" / "paper-scale.yaml"
    if not path.exists():
        pytest.skip("configs/paper-scale.yaml is not there yet")
    cfg = yaml.safe_load(path.read_text()) or {}
    search = cfg.get("search", {})
    rounds = search.get("rounds", [8, 4, 2])
    baselines = search.get("baselines", ["regmix", "random"])
    targets = cfg.get("targets") or {"general": None}
    n_targets = len(search.get("targets") or targets)
    (tmp_path / "data" / "shards").mkdir(parents=True)
    for i in range(4):  # input.shards: data/shards/*.jsonl.zst; empty files are enough for a dry run
        (tmp_path / "data" / "shards" / f"part-{i:04d}.jsonl.zst").write_bytes(b"")
    counts = _dry_counts(tmp_path, configfile=path)
    extra_pool = sum(rounds) - rounds[0] if {"regmix", "random"} & set(baselines) else 0
    replicates = search.get("replicates", 3)
    noise_floor = replicates + max(replicates - 1, 0)  # the natural mixture's replicates and pool/mix0's contrasts
    assert counts["train_proxy"] == rounds[0] + n_targets * sum(rounds[1:]) + extra_pool + noise_floor


def test_two_targets_share_the_pool_but_not_the_rounds(tmp_path):
    cfg = tmp_path / "two.yaml"
    base = yaml.safe_load(CI_CONFIG.read_text())
    base["targets"] = {
        "general": {"tasks": [{"task": "climb_heldout_bpb", "metric": "bits_per_byte", "higher_is_better": False}]},
        "mc": {"tasks": [{"task": "climb_heldout_mc", "metric": "acc"}]},
    }
    base["search"] = {"rounds": [4, 3, 2], "baselines": ["random"], "replicates": 2}
    base["validation"] = {"in_all": False}  # the search's own jobs (validate would add its strategies' finals)
    cfg.write_text(yaml.safe_dump(base))
    counts = _dry_counts(tmp_path / "w", configfile=cfg)
    assert counts["sample_pool_mixture"] == 9
    # each target proposes its own rounds 2 and 3; 2 replicates and 1 contrast
    assert counts["train_proxy"] == 9 + 2 * (3 + 2) + 2 + 1
    # the pool's extra 5 only on the validation target; the replicates and the contrast are scored on both targets
    assert counts["evaluate_proxy"] == (4 + 3 + 2) * 2 + 5 + 3 * 2
    assert counts["final_mixture"] == 3


CI_SEARCH = yaml.safe_load(CI_CONFIG.read_text())["search"]


def _read(path):
    return json.loads(path.read_text())


def test_pipeline_search_outputs(pipeline):
    """The CI pipeline's search: pool, rounds, predictors, and final mixtures of every strategy."""
    ci = yaml.safe_load(CI_CONFIG.read_text())
    rounds = ci["search"]["rounds"]
    search = pipeline / "results" / "search"
    prior = _read(pipeline / "results/tokens/prior.json")["prior"]
    pool = [_read(search / f"pool/mix{i}/weights.json")["weights"] for i in range(sum(rounds))]
    for w in pool:
        assert set(w) == set(prior) and abs(sum(w.values()) - 1) < 1e-9
    proposals = _read(search / "general/round2/proposals.json")
    assert len(proposals["mixtures"]) == rounds[1]
    round2 = [_read(search / f"general/round2/mix{i}/weights.json")["weights"] for i in range(rounds[1])]
    assert round2 == [m["weights"] for m in proposals["mixtures"]]
    evaluated = np.array([[w[k] for k in sorted(prior, key=int)] for w in pool[: rounds[0]]])
    for w in round2:
        v = np.array([w[k] for k in sorted(prior, key=int)])
        assert (0.5 * np.abs(evaluated - v).sum(axis=1)).min() >= 0.02 - 1e-9
    for r in range(1, len(rounds) + 1):
        summary = _read(search / f"general/round{r}/predictor.json")
        assert summary["n_rows"] == sum(rounds[:r])
        assert (search / f"general/round{r}/predictor.txt").read_text().startswith("tree")
    finals = {s: _read(search / f"general/{s}/final_mixture.json")
              for s in ("climb", "regmix", "random", "natural", "uniform")}
    for strategy, final in finals.items():
        assert set(final["weights"]) == set(prior), strategy
        assert abs(sum(final["weights"].values()) - 1) < 1e-9, strategy
    assert finals["climb"]["predicted"] is not None and np.isfinite(finals["climb"]["predicted"])
    assert finals["natural"]["weights"] == pytest.approx(prior)
    scores = [_read(search / f"pool/mix{i}/scores/general.json")["objective"] for i in range(sum(rounds))]
    assert finals["random"]["observed"] == max(scores)


def test_pipeline_search_is_incremental(pipeline_copy):
    """Adding a round trains only the new round's proxies (plus the pool mixtures the larger baseline budget
    needs); changing the final rule retrains nothing."""
    rounds = CI_SEARCH["rounds"]
    assert {"regmix", "random"} & set(CI_SEARCH["baselines"])
    counts = _dry_counts(pipeline_copy, {**CI_SEARCH, "rounds": [*rounds, 2]}, configfile=CI_CONFIG)
    new_pool = [i for i in range(sum(rounds) + 2)
                if not (pipeline_copy / f"results/search/pool/mix{i}/scores/general.json").exists()]
    assert len(new_pool) == 2  # the baselines' budget grows with the new round
    assert counts.get("train_proxy") == 2 + 2  # round 3, and the two new pool mixtures
    assert counts.get("sample_pool_mixture") == 2
    assert counts.get("fit_round_predictor") == 1  # round 3 only: rounds 1 and 2 are kept
    assert counts.get("propose_round") == 1
    counts = _dry_counts(pipeline_copy, {**CI_SEARCH, "final": "topk_mean"}, configfile=CI_CONFIG)
    assert "train_proxy" not in counts and "propose_round" not in counts and "fit_round_predictor" not in counts
    assert counts["final_mixture"] == 1  # climb: regmix's final step reads only search.regmix_candidates and regmix_topk
