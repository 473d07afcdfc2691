"""A real corpus starts from real settings: the embedded default's values stop applying once input.shards is set,
and the preflight lists demo settings and what the local caches lack (climb.compute.preflight)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from climb.compute.preflight import (
    PAPER_VALUES,
    PreflightError,
    check,
    demo_settings,
    missing_from_caches,
    model_cached,
)
from climb.core.config import apply_embedded_default, load_schema
from tests.conftest import BIN, ROOT

PAPER = ROOT / "configs" / "paper-scale.yaml"
EXAMPLE = ROOT / "configs" / "example.yaml"


def _defaults(schema: dict) -> dict:
    out = {}
    for name, node in schema.get("properties", {}).items():
        if node.get("type") == "object" and "properties" in node:
            out[name] = {**(node.get("default") or {}), **_defaults(node)}
        elif "default" in node:
            out[name] = node["default"]
    return out


def full(config: dict) -> dict:
    """``config`` over the schema's defaults (as Snakemake's validate fills them in)."""
    def merge(base: dict, top: dict) -> dict:
        out = dict(base)
        for key, value in top.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    return merge(_defaults(load_schema()), config)


def test_paper_values_are_paper_scale_yaml():
    paper = full(yaml.safe_load(PAPER.read_text()))
    for key, value in PAPER_VALUES.items():
        node = paper
        for part in key.split("."):
            node = node[part]
        assert node == value, key


def test_demo_settings_named_with_the_papers_value():
    cfg = full({"input": {"shards": ["x.jsonl"]}})
    found = demo_settings(cfg)
    assert len(found) == len(PAPER_VALUES)
    assert "cluster.k = 32 (the embedded demo's default); configs/paper-scale.yaml: 1000" in found
    assert not demo_settings(full(yaml.safe_load(PAPER.read_text())))
    # pretrained quality classifiers: no teacher, so its kind is not a finding
    cfg["quality"]["classifier"]["source"] = "pretrained"
    assert not any(line.startswith("quality.teacher.kind") for line in demo_settings(cfg))


def test_embedded_default_is_quiet_and_strict_stops():
    assert check(full({"preflight": "strict"})) == ""  # no input.shards: the embedded default
    with pytest.raises(PreflightError, match=r"proxy.preset = 'tiny'"):
        check(full({"input": {"shards": ["x.jsonl"]}, "preflight": "strict"}))
    assert check(full({"input": {"shards": ["x.jsonl"]}, "preflight": "off"})) == ""


def test_embedded_default_applies_only_without_shards(tmp_path):
    default = ROOT / "config.yaml"
    demo = yaml.safe_load(default.read_text())
    cfg = {"cluster": {"niter": 5}}
    assert apply_embedded_default(cfg, default) and cfg["cluster"] == {"niter": 5, **demo["cluster"]}
    assert list(cfg["cluster"]) == ["niter", *demo["cluster"]]  # Snakemake's order: --configfile keys first
    real = {"input": {"shards": ["a.jsonl"]}, "cluster": {"niter": 5}}
    assert not apply_embedded_default(real, default)
    schema = load_schema()["properties"]
    for section, key in [("cluster", "fit_shards"), ("cluster", "nredo"), ("export", "token_budget"),
                         ("search", "epoch_tokens")]:
        assert real[section][key] == schema[section]["properties"][key]["default"] != demo[section][key], key
    assert real["cluster"]["niter"] == 5 and real["input"]["shards"] == ["a.jsonl"]
    assert list(real["cluster"]) == ["niter", *demo["cluster"]]  # the same key order as with the demo's values


def test_caches(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    assert not model_cached("org/model")
    (hub / "models--org--model" / "snapshots" / "abc").mkdir(parents=True)
    assert model_cached("org/model") and model_cached(str(tmp_path))
    cfg = full({"input": {"shards": ["x"]}, "embed": {"model": "org/other"},
                "evaluation": {"data_files": {"climb_piqa": str(tmp_path / "piqa.jsonl")}},
                "targets": {"t": {"tasks": [{"task": "climb_piqa", "metric": "acc", "weight": 1.0,
                                             "higher_is_better": True}]}}})
    missing = missing_from_caches(cfg)
    assert any("embed.model = 'org/other'" in m for m in missing), missing
    assert any("evaluation.data_files.climb_piqa" in m for m in missing), missing


def _dry_run(workdir: Path, *configs: Path, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
                           "-n", "--quiet", "rules", "--configfile", *map(str, configs), *extra],
                          capture_output=True, text=True, timeout=600)


def _real_corpus(tmp_path: Path) -> None:
    (tmp_path / "data" / "shards").mkdir(parents=True)
    (tmp_path / "data" / "eval").mkdir()
    for i in range(2):
        rows = [{"id": f"{i}-{j}", "text": f"document {j} of shard {i}"} for j in range(5)]
        (tmp_path / "data" / "shards" / f"s{i}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name in ("heldout.jsonl", "eval/ai2_arc_ARC-Easy_validation.jsonl", "eval/piqa_validation.jsonl"):
        (tmp_path / "data" / name).write_text("{}\n")


def test_many_shards_at_one_per_job_suggest_batching(tmp_path):
    from climb.compute.preflight import MAX_JOBS_PER_STAGE, batching

    for i in range(MAX_JOBS_PER_STAGE + 500):
        (tmp_path / f"part-{i:05d}.jsonl").touch()
    cfg = full({"input": {"shards": [str(tmp_path / "*.jsonl")]}})
    assert batching(cfg) == ["input.shards_per_job = 1: 1,500 input shards are ~1,500 jobs of each of the 8 "
                             "per-shard stages, and every dry run builds them all; input.shards_per_job: 2 makes ~1,000"]
    cfg["input"]["shards_per_job"] = 2
    assert batching(cfg) == []
    cfg["input"]["shards"] = [str(tmp_path / "*.parquet")]  # matches nothing: the Snakefile says so, not this
    assert batching(cfg) == []


def test_real_corpus_with_demo_settings_prints_the_list_and_strict_stops(tmp_path):
    _real_corpus(tmp_path)
    corpus = tmp_path / "corpus.yaml"
    corpus.write_text(yaml.safe_dump({"input": {"shards": ["data/shards/*.jsonl"]},
                                      "evaluation": {"heldout": {"path": "data/heldout.jsonl"}}}))
    other = tmp_path / "seed.yaml"  # a second --configfile: the demo's corpus values still do not come back
    other.write_text("seed: 5\n")
    proc = _dry_run(tmp_path, corpus, other)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert "preflight: 9 finding(s)" in text and "cluster.k = 32" in text and "search.rounds = [8, 4, 2]" in text, text
    proc = _dry_run(tmp_path, corpus, other, extra=("--config", "preflight=strict"))
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "PreflightError" in text and "proxy.preset = 'tiny'" in text, text[-3000:]


def test_example_config_runs_clean(tmp_path):
    """configs/example.yaml on a corpus laid out as it says: the dry run passes its own `preflight: strict`."""
    _real_corpus(tmp_path)
    cfg = yaml.safe_load(EXAMPLE.read_text())
    cfg["input"]["shards"] = ["data/shards/*.jsonl"]  # the example names .jsonl.zst shards
    example = tmp_path / "example.yaml"
    example.write_text(yaml.safe_dump(cfg))
    assert cfg["preflight"] == "strict"
    proc = _dry_run(tmp_path, example)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "preflight:" not in proc.stdout + proc.stderr
    assert "fit_kmeans" in proc.stdout and "train_proxy" in proc.stdout


def test_embedded_default_run_is_quiet(tmp_path):
    proc = _dry_run(tmp_path, ROOT / "tests" / "configs" / "ci.yaml", extra=("--config", "preflight=strict"))
    assert proc.returncode == 0 and "preflight:" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
