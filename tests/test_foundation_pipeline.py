"""Stages 1-2 on the small test config: corpus, ingest, embed, k-means — real outcomes on the fixture's outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml

from climb.cluster.embeddings import embed_texts, load_encoder
from climb.core.config import load_schema
from climb.corpus.embedded_corpus import write_embedded_corpus
from climb.corpus.ingest import ingest_shard
from tests.conftest import CI_CONFIG, ROOT, job_counts, snakemake

CI = yaml.safe_load(CI_CONFIG.read_text())
SHARDS = [f"embedded-{i:03d}" for i in range(CI["input"]["embedded"]["n_shards"])]
HELDOUT_PER_TOPIC = CI["input"]["embedded"].get(
    "heldout_per_topic", load_schema()["properties"]["input"]["properties"]["embedded"]["properties"]
    ["heldout_per_topic"]["default"])


def test_dry_run_lists_the_jobs(tmp_path):
    proc = snakemake(tmp_path, "-n", "--quiet", "rules")
    counts = job_counts(proc.stdout)
    n = len(SHARDS)
    assert {rule: counts.get(rule) for rule in ("build_embedded_corpus", "ingest", "summarize_corpus", "embed",
                                                "fit_kmeans", "assign_clusters")} == {
        "build_embedded_corpus": 1, "ingest": n, "summarize_corpus": 1, "embed": n, "fit_kmeans": 1,
        "assign_clusters": n}


def test_lint_is_clean():
    proc = snakemake(ROOT, "--lint", configfile=None, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_embedded_corpus_and_ingest_accounting(pipeline):
    results = pipeline / "results"
    manifest = json.loads((results / "embedded" / "manifest.json").read_text())
    summary = json.loads((results / "corpus" / "summary.json").read_text())
    assert summary["input_rows"] == manifest["documents"] == summary["kept"] + summary["rejected_total"]
    origins = manifest["by_origin"]
    topics = {o for o in origins if o.startswith("natural/")}
    kinds = {o for o in origins if o.startswith("planted/")}
    assert len(topics) >= 6 and len(kinds) >= 5
    for shard in SHARDS:
        corpus = pq.read_table(results / "corpus" / f"{shard}.parquet")
        assert corpus.schema.names == ["id", "text", "n_chars", "source", "origin"]
        ids = corpus.column("id").to_pylist()
        assert len(ids) == len(set(ids))
        assert all(o.startswith(("natural/", "planted/")) for o in corpus.column("origin").to_pylist())
    heldout = [json.loads(line) for line in (results / "embedded" / "heldout.jsonl").read_text().splitlines()]
    corpus_ids = {i for s in SHARDS for i in pq.read_table(results / "corpus" / f"{s}.parquet").column("id").to_pylist()}
    assert heldout and not corpus_ids & {h["id"] for h in heldout}


def test_same_seed_same_bytes_for_corpus_and_ids(pipeline, tmp_path):
    """A second build and ingest with the same settings gives identical files (hence identical ids)."""
    results = pipeline / "results"
    settings = {**CI["input"]["embedded"]}
    paths = [str(tmp_path / f"{s}.jsonl") for s in SHARDS]
    write_embedded_corpus(paths, str(tmp_path / "heldout.jsonl"), str(tmp_path / "manifest.json"),
                          docs_per_topic=settings["docs_per_topic"], heldout_per_topic=HELDOUT_PER_TOPIC,
                          planted_per_kind=settings["planted_per_kind"], min_chars=200,
                          max_chars=settings["max_chars"], seed=CI["seed"])
    for shard, path in zip(SHARDS, paths, strict=True):
        assert Path(path).read_bytes() == (results / "embedded" / f"{shard}.jsonl").read_bytes()
    shard = SHARDS[0]
    ingest_shard(paths[0], tmp_path / "c.parquet", tmp_path / "r.jsonl", tmp_path / "n.json", shard=shard)
    assert (tmp_path / "c.parquet").read_bytes() == (results / "corpus" / f"{shard}.parquet").read_bytes()


def test_embeddings_row_aligned_and_unit_norm(pipeline):
    results = pipeline / "results"
    encoder = load_encoder(max_seq_length=CI["embed"]["max_seq_length"], device="cpu")
    for shard in SHARDS:
        texts = pq.read_table(results / "corpus" / f"{shard}.parquet", columns=["text"]).column("text").to_pylist()
        vectors = np.load(results / "embed" / f"{shard}.npy")
        assert vectors.dtype == np.float16 and vectors.shape == (len(texts), 384)
        assert np.allclose(np.linalg.norm(vectors.astype(np.float32), axis=1), 1.0, atol=2e-3)
    # row i of the file is the embedding of corpus row i: re-embed a few rows and compare
    rows = [0, 7, len(texts) - 1]
    fresh = embed_texts(encoder, [texts[i] for i in rows])
    cos = np.sum(fresh * vectors[rows].astype(np.float32), axis=1)
    assert np.all(cos > 0.999), cos
    # and not some other row's
    assert np.sum(fresh[0] * vectors[rows[1]].astype(np.float32)) < 0.99


def test_kmeans_outputs(pipeline):
    results = pipeline / "results"
    k = CI["cluster"]["k"]
    centroids = np.load(results / "kmeans" / "centroids.npy")
    assert centroids.dtype == np.float32 and centroids.shape == (k, 384)
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-4)
    fit = json.loads((results / "kmeans" / "fit.json").read_text())
    assert set(fit["sample_per_shard"]) == {f"{s}.npy" for s in SHARDS[: CI["cluster"]["fit_shards"]]}
    used = set()
    for shard in SHARDS:
        ids = pq.read_table(results / "corpus" / f"{shard}.parquet", columns=["id"]).column("id").to_pylist()
        assign = pq.read_table(results / "kmeans" / "assign" / f"{shard}.parquet")
        assert assign.column("id").to_pylist() == ids
        clusters = assign.column("cluster").to_numpy()
        vectors = np.load(results / "embed" / f"{shard}.npy").astype(np.float32)
        sims = vectors @ centroids.T
        assert np.array_equal(clusters, sims.argmax(axis=1))
        assert np.allclose(assign.column("distance").to_numpy(), 1 - sims.max(axis=1), atol=1e-4)
        used |= set(clusters.tolist())
    assert len(used) > k // 2


def test_added_shard_is_assigned_without_refit(pipeline_copy):
    """Adding a shard later: ingest, embed and assign only it; the k-means fit is not redone."""
    extra = pipeline_copy / "extra"
    extra.mkdir()
    (extra / "zz-new.jsonl").write_text("".join(
        json.dumps({"id": f"new-{i}", "text": f"A new document about sorting lists number {i}."}) + "\n"
        for i in range(5)))
    config = yaml.safe_load(CI_CONFIG.read_text())
    config["input"]["shards"] = ["results/embedded/embedded-*.jsonl", "extra/zz-new.jsonl"]
    cfg = pipeline_copy / "more.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))  # key order is part of params
    proc = snakemake(pipeline_copy, "-n", "--quiet", "rules", configfile=cfg)
    counts = job_counts(proc.stdout)
    assert "fit_kmeans" not in counts
    assert counts.get("ingest") == counts.get("embed") == counts.get("assign_clusters") == 1
    proc = snakemake(pipeline_copy, "--cores", "2", "results/kmeans/assign/zz-new.parquet", configfile=cfg)
    assign = pq.read_table(pipeline_copy / "results" / "kmeans" / "assign" / "zz-new.parquet")
    assert assign.num_rows == 5


def test_killed_outputs_are_never_taken_as_done(pipeline_copy):
    """A temporary file left by a killed writer is not an output; removing an output reruns only its job."""
    results = pipeline_copy / "results"
    target = results / "embed" / f"{SHARDS[1]}.npy"
    shutil.move(target, target.with_name(f".{target.name}.tmp-12345"))
    proc = snakemake(pipeline_copy, f"results/embed/{SHARDS[1]}.npy", "-n", "--quiet", "rules")
    counts = job_counts(proc.stdout)
    assert counts.get("embed") == 1 and "ingest" not in counts
