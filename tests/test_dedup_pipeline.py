"""The filters on the CI pipeline's run: accounting against the corpus counts, and every removal checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from climb.filter.decontam import words
from tests.conftest import CI_CONFIG


def _shards(workdir: Path) -> list[str]:
    return sorted(p.name.removesuffix(".json") for p in (workdir / "results/corpus/counts").glob("*.json"))


def _rows(paths) -> list[dict]:
    return [row for path in paths for row in pq.read_table(path).to_pylist()]


def check_summary(workdir: Path) -> None:
    summary = json.loads((workdir / "results/filter/summary.json").read_text())
    counts = [json.loads((workdir / f"results/corpus/counts/{s}.json").read_text()) for s in _shards(workdir)]
    corpus_ids = [i for s in _shards(workdir)
                  for i in pq.read_table(workdir / f"results/corpus/{s}.parquet", columns=["id"]).column("id").to_pylist()]
    dedup = _rows(sorted((workdir / "results/filter/dedup").glob("*.parquet")))
    decontam = _rows(sorted((workdir / "results/filter/decontam").glob("*.parquet")))
    filtered = {r["id"] for r in dedup} | {r["id"] for r in decontam}

    assert summary["input_rows"] == sum(c["input_rows"] for c in counts)
    assert summary["rejected"] == sum(sum(c["rejected"].values()) for c in counts)
    assert summary["filtered"] == len(filtered) and filtered <= set(corpus_ids)
    assert summary["kept"] == len(corpus_ids) - len(filtered)
    assert summary["input_rows"] == summary["kept"] + summary["filtered"] + summary["rejected"]
    assert summary["filtered_by_filter"] == {"dedup": len(dedup), "decontam": len(decontam)}
    assert summary["filtered_by_reason"].get("near-duplicate", 0) == len(dedup)
    for name, shard in summary["shards"].items():
        assert shard["input_rows"] == shard["kept"] + shard["filtered"] + shard["rejected"], name
    assert sum(c["size"] for c in summary["dedup_by_cluster"]) == len(corpus_ids)


def check_dedup(workdir: Path, threshold: float) -> None:
    assign, vectors = {}, {}
    for s in _shards(workdir):
        table = pq.read_table(workdir / f"results/kmeans/assign/{s}.parquet").to_pylist()
        emb = np.load(workdir / f"results/embed/{s}.npy").astype(np.float32)
        for row, vec in zip(table, emb, strict=True):
            assign[row["id"]] = row
            vectors[row["id"]] = vec
    removed = _rows(sorted((workdir / "results/filter/dedup").glob("*.parquet")))
    gone = {r["id"] for r in removed}
    assert len(gone) == len(removed)
    for r in removed:
        kept = r["duplicate_of"]
        assert kept not in gone
        assert assign[r["id"]]["cluster"] == assign[kept]["cluster"] == r["cluster"]
        cos = float(vectors[r["id"]] @ vectors[kept])
        assert cos > threshold and cos == pytest.approx(r["cosine"], abs=1e-3)
        # the kept one is the one closer to the centroid (ties by id)
        assert (assign[kept]["distance"], kept) <= (assign[r["id"]]["distance"], r["id"])


def check_decontam(workdir: Path) -> None:
    texts = {}
    for s in _shards(workdir):
        table = pq.read_table(workdir / f"results/corpus/{s}.parquet", columns=["id", "text"]).to_pylist()
        texts.update({r["id"]: r["text"] for r in table})
    index = pq.read_table(workdir / "results/filter/decontam_index/ngrams.parquet").to_pylist()
    grams = {(r["task"], r["ngram"]) for r in index}
    stats = json.loads((workdir / "results/filter/decontam_index/tasks.json").read_text())
    cfg = yaml.safe_load(CI_CONFIG.read_text())
    configured = {t["task"] for target in (cfg.get("targets") or {}).values() for t in target["tasks"]}
    if configured:
        assert configured <= set(stats["tasks"])
    for r in _rows(sorted((workdir / "results/filter/decontam").glob("*.parquet"))):
        assert r["ngram"] in " ".join(words(texts[r["id"]]))
        assert all((task, r["ngram"]) in grams for task in r["task"].split(","))
        assert r["task"].split(",")[0] in r["reason"]


@pytest.mark.slow
def test_filters_on_the_pipeline(pipeline):
    cfg = yaml.safe_load(CI_CONFIG.read_text())
    check_summary(pipeline)
    check_dedup(pipeline, (cfg.get("dedup") or {}).get("threshold", 0.95))
    check_decontam(pipeline)


@pytest.mark.slow
def test_export_leaves_out_filtered_documents(pipeline):
    parts = sorted((pipeline / "results/climbmix").glob("part-*.parquet"))
    if not parts:
        pytest.skip("the CI pipeline exports no ClimbMix parts")
    filtered = {r["id"] for folder in ("dedup", "decontam")
                for r in _rows(sorted((pipeline / "results/filter" / folder).glob("*.parquet")))}
    assert filtered, "the CI corpus has near-duplicates and leaks to remove"
    exported = {i for p in parts for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()}
    assert exported and not exported & filtered
