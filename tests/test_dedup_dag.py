"""The filters in the DAG: dedup split by cluster groups, decontamination per shard, both switchable."""

from __future__ import annotations

import re

import yaml

from climb.corpus.shards import batch_shards
from tests.conftest import CI_CONFIG, ROOT, snakemake


def _jobs(output: str, rule: str) -> list[dict[str, str]]:
    """The `rule <name>:` blocks of a `snakemake -n` listing, as {field: value}."""
    jobs = []
    for block in re.split(r"\n(?=\[[^\]]+\]\n|rule |localrule )", output):
        if re.match(rf"(?:\[[^\]]+\]\n)?(?:local)?rule {rule}:", block):
            fields = dict(re.findall(r"^\s+(\w+): (.*)$", block, re.M))
            jobs.append(fields)
    return jobs


def _many_shards(tmp_path, n_shards: int, overrides: dict) -> tuple:
    workdir = tmp_path / "run"
    (workdir / "data").mkdir(parents=True)
    for i in range(n_shards):
        (workdir / "data" / f"part-{i:03d}.jsonl").write_text("")
    cfg = yaml.safe_load(CI_CONFIG.read_text())
    cfg["input"] = {"shards": ["data/part-*.jsonl"]}
    cfg.setdefault("evaluation", {})["heldout"] = {**cfg.get("evaluation", {}).get("heldout", {}),
                                                   "path": "data/heldout.jsonl"}
    (workdir / "data" / "heldout.jsonl").write_text("")
    for key, value in overrides.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return workdir, path


def test_dedup_jobs_are_split_by_cluster_groups(tmp_path):
    workdir, config = _many_shards(tmp_path, 40, {"cluster": {"k": 1000}, "dedup": {"n_groups": 50}})
    out = snakemake(workdir, "-n", "results/filter/summary.json", configfile=config).stdout
    dedup = _jobs(out, "dedup")
    assert len(dedup) == 50, "one dedup job per cluster group, not one for the corpus"
    assert sorted(int(re.search(r"dedup/(\d+)\.parquet", j["output"]).group(1)) for j in dedup) == list(range(50))
    for job in dedup:  # each group reads every shard's assignment and embeddings, through one manifest
        assert job["input"] == "results/kmeans/manifest.json"
    manifest = _jobs(out, "cluster_manifest")[0]["input"].split(", ")
    assert sum("kmeans/assign/" in f for f in manifest) == 40 and sum("embed/" in f for f in manifest) == 40
    assert len(_jobs(out, "decontam")) == 40
    assert len(_jobs(out, "decontam_index")) == 1
    summary = _jobs(out, "filter_summary")[0]["input"]
    assert summary.count("results/filter/dedup/") == 2 * 50 and summary.count("results/filter/decontam/") == 40


def test_more_groups_than_clusters_and_filters_off(tmp_path):
    workdir, config = _many_shards(tmp_path, 3, {"cluster": {"k": 4}, "dedup": {"n_groups": 64}})
    out = snakemake(workdir, "-n", "results/filter/summary.json", configfile=config).stdout
    assert len(_jobs(out, "dedup")) == 4

    workdir, config = _many_shards(tmp_path / "off", 3, {"dedup": {"enabled": False},
                                                         "decontam": {"enabled": False}})
    out = snakemake(workdir, "-n", "results/filter/summary.json", configfile=config).stdout
    assert not _jobs(out, "dedup") and not _jobs(out, "decontam") and not _jobs(out, "decontam_index")
    assert "results/filter/" not in _jobs(out, "filter_summary")[0].get("input", "")


def test_paper_scale_dedup_groups(tmp_path):
    path = ROOT / "configs" / "paper-scale.yaml"
    cfg = yaml.safe_load(path.read_text())
    workdir = tmp_path / "paper"
    (workdir / "data" / "shards").mkdir(parents=True)
    for i in range(80):  # input.shards: data/shards/*.jsonl.zst; empty files are enough for a dry run
        (workdir / "data" / "shards" / f"part-{i:04d}.jsonl.zst").write_bytes(b"")
    out = snakemake(workdir, "-n", "results/filter/summary.json", configfile=path).stdout
    dedup = _jobs(out, "dedup")
    assert len(dedup) == min(cfg["dedup"]["n_groups"], cfg["cluster"]["k"]) > 1
    corpus_shards = batch_shards([f"part-{i:04d}" for i in range(80)], cfg["input"]["shards_per_job"])
    assert len(_jobs(out, "decontam")) == len(corpus_shards) < 80  # one job per batch of input shards
