"""Incremental reruns: after a change, a dry run on a copy of the finished test pipeline lists only the jobs
that change must redo (Snakemake's default rerun triggers: mtime, params, input, code, software env)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.config_recording import build_dag
from tests.conftest import CI_CONFIG, ROOT, snakemake

# What must never rerun when only a later stage's setting changes.
EMBED_AND_CLUSTER = {"build_embedded_corpus", "ingest", "embed", "fit_kmeans", "assign_clusters"}
QUALITY = {"annotate_quality", "quality_classifiers", "score_quality"}
TOKENIZE = {"train_tokenizer", "tokenize"}
FILTERS = {"dedup", "decontam_index", "decontam"}
SEARCH = {"sample_pool_mixture", "train_proxy", "evaluate_proxy", "fit_round_predictor", "propose_round",
          "split_proposal", "fit_regmix_predictor", "final_mixture"}
EXPORT = {"climbmix_plan", "climbmix_select", "climbmix"}


def overlay(workdir: Path, changes: dict) -> Path:
    """The test config with `changes` merged in, written beside the workdir."""
    def merge(base, new):
        for key, value in new.items():
            base[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
        return base
    cfg = merge(yaml.safe_load(CI_CONFIG.read_text()), changes)
    path = workdir.parent / "changed.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))  # key order matters: Snakemake compares params as written
    return path


def jobs_to_run(workdir: Path, configfile: Path) -> tuple[dict[str, int], str]:
    """rule -> jobs a dry run would run, and the dry run's text (for failure messages)."""
    proc = snakemake(workdir, "-n", configfile=configfile)
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}, text
    counts = {}
    for line in text.split("Job stats:")[1].splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    counts.pop("all", None)
    counts.pop("total", None)
    return counts, text


def reasons(text: str, rules: set[str]) -> str:
    """The dry run's job blocks of the given rules (why they rerun)."""
    blocks = [b for b in re.split(r"\n(?=\[)|\n\n", text) if re.search(r"^(?:local)?rule (\w+):", b, re.M)
              and re.search(r"^(?:local)?rule (\w+):", b, re.M).group(1) in rules]
    return "\n\n".join(blocks[:6])[-4000:]


@pytest.mark.slow
def test_nothing_to_do_after_the_run(pipeline_copy):
    counts, text = jobs_to_run(pipeline_copy, CI_CONFIG)
    assert counts == {}, reasons(text, set(counts))


@pytest.mark.slow
def test_naming_a_default_in_another_order_reruns_nothing(pipeline_copy):
    # Snakemake compares params as written; rules must not depend on which keys a config file names, or in what order.
    cfg = yaml.safe_load(CI_CONFIG.read_text())
    search = {"max_tries": 1000, "cap": 10.0, **cfg["search"], "final": "argmax"}  # defaults, named, reordered
    path = pipeline_copy.parent / "named.yaml"
    path.write_text(yaml.safe_dump({**cfg, "search": dict(reversed(search.items()))}, sort_keys=False))
    counts, text = jobs_to_run(pipeline_copy, path)
    assert counts == {}, reasons(text, set(counts))


@pytest.mark.slow
def test_export_budget_reruns_only_export(pipeline_copy):
    budget = yaml.safe_load(CI_CONFIG.read_text())["export"]["token_budget"]
    counts, text = jobs_to_run(pipeline_copy, overlay(pipeline_copy, {"export": {"token_budget": budget // 2}}))
    assert "climbmix_plan" in counts and "climbmix" in counts, counts
    assert set(counts) <= EXPORT, f"{set(counts) - EXPORT} rerun:\n{reasons(text, set(counts) - EXPORT)}"


@pytest.mark.slow
def test_search_rounds_rerun_only_search_onward(pipeline_copy):
    rounds = yaml.safe_load(CI_CONFIG.read_text())["search"]["rounds"]
    changed = [*rounds[:-1], rounds[-1] + 1]
    counts, text = jobs_to_run(pipeline_copy, overlay(pipeline_copy, {"search": {"rounds": changed}}))
    assert "final_mixture" in counts and "train_proxy" in counts, counts
    upstream = EMBED_AND_CLUSTER | QUALITY | TOKENIZE | FILTERS | {"superclusters", "cluster_quality_sums",
                                                                   "token_prior"}
    assert not set(counts) & upstream, reasons(text, set(counts) & upstream)
    # the first round's proxies (the pool) are kept: only the new and later rounds' proxies train
    assert counts["train_proxy"] < sum(changed), reasons(text, {"train_proxy"})


@pytest.mark.slow
def test_prune_threshold_reruns_pruning_onward(pipeline_copy):
    thresholds = {"writing_quality": 1.0, "advertisement": 2.5, "informational_value": 1.0,
                  "educational_value": 1.0}
    counts, text = jobs_to_run(pipeline_copy, overlay(pipeline_copy, {"prune": {"thresholds": thresholds}}))
    assert "superclusters" in counts, counts
    never = EMBED_AND_CLUSTER | QUALITY | TOKENIZE | FILTERS | {"cluster_quality_sums"}
    assert not set(counts) & never, reasons(text, set(counts) & never)


@pytest.mark.slow
def test_added_shard_runs_only_that_shard(pipeline_copy):
    """The corpus as explicit shards, then one more: per-shard work for it alone, no k-means refit."""
    work = pipeline_copy
    explicit = {"input": {"shards": ["results/embedded/embedded-*.jsonl"]},
                "evaluation": {"heldout": {"path": "results/embedded/heldout.jsonl"}}}
    base_counts, text = jobs_to_run(work, overlay(work, explicit))
    assert not set(base_counts) & (EMBED_AND_CLUSTER | QUALITY | TOKENIZE), reasons(text, set(base_counts))

    rows = [json.loads(line) for line in (work / "results/embedded/embedded-000.jsonl").read_text().splitlines()]
    extra = work / "more" / "extra-000.jsonl"
    extra.parent.mkdir()
    with extra.open("w") as f:
        for row in rows[:60]:
            f.write(json.dumps({**row, "id": f"extra-{row['id']}", "text": row["text"] + "\nAdded later."}) + "\n")
    explicit["input"]["shards"].append("more/*.jsonl")
    counts, text = jobs_to_run(work, overlay(work, explicit))
    for rule in ("ingest", "embed", "assign_clusters", "score_quality", "tokenize"):
        assert counts.get(rule) == 1, f"{rule}: {counts.get(rule)} jobs, expected 1 (the new shard)\n" + \
            reasons(text, {rule})
    not_again = {"fit_kmeans", "train_tokenizer", "quality_classifiers", "annotate_quality"}
    assert not set(counts) & not_again, reasons(text, set(counts) & not_again)
    assert "results/embed/extra-000.npy" in text, reasons(text, {"embed"})
    assert "superclusters" in counts  # per-cluster aggregates see the new documents


@pytest.mark.slow
def test_a_second_target_reruns_no_job_of_the_first(pipeline_copy):
    """A new target: its own evaluations and search, and nothing of the existing target's."""
    second = {"tasks": [{"task": "climb_heldout_bpb", "metric": "bits_per_byte", "weight": 1.0,
                         "higher_is_better": False}]}
    general = {"tasks": [{"task": "climb_heldout_bpb", "metric": "bits_per_byte", "weight": 1.0,
                          "higher_is_better": False},
                         {"task": "climb_heldout_mc", "metric": "acc", "weight": 0.0, "higher_is_better": True}]}
    dag = build_dag(ROOT / "Snakefile", pipeline_copy, [overlay(pipeline_copy, {"targets": {"general": general,
                                                                                          "second": second}})])
    jobs = [(job.rule.name, dict(job.wildcards_dict)) for job in dag.needrun_jobs() if job.rule.name != "all"]
    first = [j for j in jobs if j[1].get("target") != "second" and not j[1].get("mixdir", "").startswith("second/")]
    assert not first, f"jobs of the first target or shared stages rerun: {first[:8]}"
    search = yaml.safe_load(CI_CONFIG.read_text())["search"]
    # the new target scores round 1's pool proxies and the noise floor's replicates, and trains nothing of the pool
    assert sum(1 for rule, w in jobs if rule == "evaluate_proxy" and w["mixdir"].startswith("pool/mix")) == \
        search["rounds"][0]
    assert sum(1 for rule, w in jobs if rule == "evaluate_proxy" and w["mixdir"].startswith("pool/replicate")) == \
        search["replicates"]
    assert not [w for rule, w in jobs if rule == "train_proxy" and w["mixdir"].startswith("pool/")]
    assert ("final_mixture", {"target": "second", "strategy": "climb"}) in jobs


@pytest.mark.slow
def test_list_changes_after_a_runtime_change_lists_nothing(pipeline_copy):
    runtime = {"embed": {"batch_size": 8}, "proxy": {"threads": 2, "checkpoint_every": 50},
               "evaluation": {"batch_size": 4}, "dedup": {"block_rows": 128}}
    proc = snakemake(pipeline_copy, "--list-changes", "params", configfile=overlay(pipeline_copy, runtime))
    assert proc.stdout.strip() == "", proc.stdout[-2000:]
    # a result key is listed, with the outputs of the rule that reads it and nothing else
    proc = snakemake(pipeline_copy, "--list-changes", "params",
                     configfile=overlay(pipeline_copy, {"export": {"part_tokens": 50000}}))
    assert proc.stdout.split() == ["results/export/plan.json"], proc.stdout[-2000:]
