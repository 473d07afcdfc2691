"""configs/paper-scale.yaml: dry runs over many shards (job counts per rule, GPU plan, DAG size, seconds).

Shards are empty files: a dry run only needs their names. The paper's search (64/32/16 proxies, one target,
no baselines) fixes the proxy counts; per-shard rules scale with the shard count.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from climb.bench.items import empty_shards
from climb.compute.placement import GPU_RULE_SIZES
from climb.compute.plan import parse_dry_run
from climb.core.config import load_schema
from climb.corpus.shards import batch_shards
from tests.conftest import BIN, ROOT, job_counts

PAPER = ROOT / "configs" / "paper-scale.yaml"
PROFILE = ROOT / "profiles" / "slurm"
PER_SHARD = ["ingest", "embed", "assign_clusters", "score_quality", "cluster_quality_sums", "decontam", "tokenize",
             "climbmix_select"]
PROXIES = 64 + 32 + 16 + 3 + 2  # the rounds, and the noise floor: 3 replicates and 2 contrasts


def dry_run(tmp_path: Path, overlay: Path, *args: str, quiet: bool = True) -> tuple[str, float]:
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(PAPER), str(overlay), "-n", *(["--quiet", "rules"] if quiet else []),
           "--config", "preflight=off", *args]  # the preflight (lm-eval's task index) is timed elsewhere
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout + proc.stderr, seconds


def corpus_shards(n: int) -> int:
    """Corpus shards (per-shard jobs of each per-shard rule) of ``n`` input shards at paper-scale's shards_per_job."""
    per_job = yaml.safe_load(PAPER.read_text())["input"]["shards_per_job"]
    return len(batch_shards([f"part-{i:05d}" for i in range(n)], per_job))  # climb.bench.items.empty_shards' names


def expected_counts(n: int) -> dict[str, int]:
    return {**{rule: corpus_shards(n) for rule in PER_SHARD}, "fit_kmeans": 1, "superclusters": 1, "dedup": 100,
            "sample_pool_mixture": 64, "train_proxy": PROXIES, "evaluate_proxy": PROXIES, "climbmix": 1}


def dag_inputs(text: str) -> int:
    """Input files summed over the jobs of a (non-quiet) dry run: the DAG's edges."""
    return sum(len(line.split(":", 1)[1].split(",")) for line in text.splitlines() if line.startswith("    input:"))


def test_paper_scale_config_is_the_papers():
    cfg = yaml.safe_load(PAPER.read_text())
    assert cfg["cluster"]["k"] == 1000 and cfg["merge"]["n_superclusters"] == 21
    assert cfg["search"]["rounds"] == [64, 32, 16]
    assert cfg["embed"]["model"].endswith("stella_en_400M_v5") and cfg["embed"]["trust_remote_code"] is True
    assert cfg["proxy"]["preset"] == "350m"
    assert {t["task"] for t in cfg["targets"]["general"]["tasks"]} == {"arc_easy", "piqa", "hellaswag"}


def test_paper_scale_dry_run_job_counts(tmp_path):
    n = 30
    text, seconds = dry_run(tmp_path, empty_shards(tmp_path, n))
    counts = job_counts(text)
    for rule, count in expected_counts(n).items():
        assert counts.get(rule) == count, f"{rule}: {counts.get(rule)} jobs, expected {count} ({counts})"
    print(f"paper-scale dry run, {n} shards: {sum(counts.values())} jobs in {seconds:.1f} s")


def test_paper_scale_gpu_plan(tmp_path):
    """`python -m climb.compute.plan` with the profile, `all validate`: GPU jobs per rule and GPU hours from the rules'
    resources, validation's target models (8 GPUs each) and dedup included."""
    n = 30
    overlay = empty_shards(tmp_path, n)
    out = tmp_path / "plan.json"
    proc = subprocess.run([sys.executable, "-m", "climb.compute.plan", "--json", str(out), "-s", str(ROOT / "Snakefile"),
                           "all", "validate", "--directory", str(tmp_path), "--profile", str(PROFILE),
                           "--configfile", str(PAPER), str(overlay)], capture_output=True, text=True, timeout=1800, cwd=ROOT,
                          env={**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"),  # empty caches
                               "HF_DATASETS_CACHE": str(tmp_path / "datasets")})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    plan = json.loads(out.read_text())
    paper = yaml.safe_load(PAPER.read_text())["validation"]
    strategies = paper.get("strategies", load_schema()["properties"]["validation"]["properties"]["strategies"]["default"])
    targets = paper["seeds"] * len(strategies)
    proxies = PROXIES + 48  # validation's regmix/random baselines grow the pool to sum(rounds) = 112
    doremi = "doremi" in strategies  # its reference proxy (train_proxy, not scored) and its Group DRO proxy
    gpu_jobs = {"embed": corpus_shards(n), "fit_kmeans": 1, "dedup": 100, "train_proxy": proxies + doremi, "evaluate_proxy": proxies,
                "train_target_model": targets, "evaluate_target_model": targets,
                **({"train_doremi_proxy": 1} if doremi else {})}
    assert {r: v["gpu_jobs"] for r, v in plan["rules"].items() if v["gpu_jobs"]} == gpu_jobs
    gpus = {**dict.fromkeys(gpu_jobs, 1), "train_target_model": paper["model"]["nproc"]}
    # a per-shard job asks for its rule's runtime once per input shard in it: embed's GPU hours are n shards' worth
    hours = sum(jobs * gpus[rule] * GPU_RULE_SIZES[rule][1] / 60 for rule, jobs in {**gpu_jobs, "embed": n}.items())
    assert plan["gpu_hours"] == pytest.approx(hours)
    assert plan["rules"]["train_target_model"]["gpu_hours"] == pytest.approx(
        targets * paper["model"]["nproc"] * GPU_RULE_SIZES["train_target_model"][1] / 60)
    assert all(plan["rules"][r]["partitions"] == ["gpu"] for r in gpu_jobs)
    assert plan["rules"]["ingest"]["partitions"] == ["cpu"] and plan["rules"]["ingest"]["gpu_jobs"] == 0
    assert "GPU hours" in proc.stdout and "train_target_model" in proc.stdout
    # the plan prints the preflight: paper-scale's encoder and lm-eval datasets are not in this machine's caches
    assert "preflight:   - not in the local caches: embed.model = 'NovaSearch/stella_en_400M_v5'" in proc.stdout
    assert "lm-eval task 'hellaswag'" in proc.stdout and "demo setting" not in proc.stdout


def _growth_per_shard(tmp_path: Path) -> tuple[float, dict]:
    """DAG edges added per added shard (20 -> 40 shards, one per job), and the rules they come from."""
    per_rule = {}
    edges = {}
    for n in (20, 40):
        work = tmp_path / f"n{n}"
        work.mkdir()
        overlay = empty_shards(work, n)
        settings = yaml.safe_load(overlay.read_text())
        settings["input"]["shards_per_job"] = 1
        overlay.write_text(yaml.safe_dump(settings))
        text, _ = dry_run(work, overlay, quiet=False)
        edges[n] = dag_inputs(text)
        rule_edges: dict[str, int] = {}
        rule = None
        for line in text.splitlines():
            if m := re.match(r"^(?:local)?rule (\w+):", line):
                rule = m.group(1)
            elif rule and line.startswith("    input:"):
                rule_edges[rule] = rule_edges.get(rule, 0) + dag_inputs(line)
        per_rule[n] = rule_edges
    growth = {r: (per_rule[40].get(r, 0) - per_rule[20].get(r, 0)) / 20 for r in per_rule[40]}
    worst = dict(sorted(((r, g) for r, g in growth.items() if g > 4), key=lambda x: -x[1]))
    return (edges[40] - edges[20]) / 20, worst


FAN_IN = ("a job that runs per mixture or per cluster group lists every shard's files as inputs, so the DAG grows "
          "with shards x jobs (measured before the manifests: ~1M edges and > 10 min for 2,000 shards)")


# A shard brings its own per-shard jobs (ingest, embed, assign, score, sums, decontam, tokenize, select: ~47 input
# files among them) and one edge into each manifest or aggregate; anything that grows with shards x jobs is far above.
MAX_EDGES_PER_SHARD = 60


@pytest.fixture(scope="module")
def growth(tmp_path_factory):
    return _growth_per_shard(tmp_path_factory.mktemp("growth"))


def test_dag_grows_linearly_with_shards(growth):
    """Adding a shard adds a bounded number of DAG edges (its own jobs and one edge into each aggregate)."""
    per_shard, worst = growth
    assert per_shard <= MAX_EDGES_PER_SHARD, f"{per_shard:.0f} DAG edges per added shard; by rule: {worst}"


@pytest.mark.slow
def test_paper_scale_2000_shards(tmp_path, growth):
    """The acceptance dry run: 2,000 shards, job counts per rule. Its seconds are printed, not asserted: the
    benchmark's `dag` item measures them (goal <= 10 s on 2 cores) against a bare Snakefile's."""
    per_shard, worst = growth
    if per_shard > MAX_EDGES_PER_SHARD:  # measured: > 10 min and > 5 GB at 2,000 shards while this holds
        pytest.xfail(f"{FAN_IN} Now {per_shard:.0f} edges per shard: {worst}")
    n = 2000
    overlay = empty_shards(tmp_path, n)
    text, seconds = dry_run(tmp_path, overlay)
    counts = job_counts(text)
    for rule, count in expected_counts(n).items():
        assert counts.get(rule) == count, f"{rule}: {counts.get(rule)} jobs, expected {count}"
    print(f"paper-scale dry run, {n} shards: {sum(counts.values())} jobs in {seconds:.1f} s")


def test_plan_parses_jobs():
    text = ("rule embed:\n    input: a\n    resources: tmpdir=/tmp, mem=8 GB, slurm_partition=gpu, runtime=60, gpu=2\n\n"
            "rule fit:\n    resources: gres=gpu:a100:4, runtime=30\n\n"
            "localrule all:\n    input: x\n\n"
            "rule ingest:\n    resources: runtime=10, slurm_partition=cpu\n")
    jobs = parse_dry_run(text)
    assert [r for r, _ in jobs] == ["embed", "fit", "all", "ingest"]
    from climb.compute.plan import plan_summary, summarize
    plan = plan_summary(summarize(jobs))
    assert plan["gpu_jobs"] == 2 and plan["cpu_jobs"] == 1
    assert plan["gpu_hours"] == pytest.approx(2 * 60 / 60 + 4 * 30 / 60)
