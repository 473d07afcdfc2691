"""The quality, prune and merge rules in the DAG and in the end-to-end test run (`pipeline` fixture)."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import CI_CONFIG, snakemake

CRITERIA = ["writing_quality", "advertisement", "informational_value", "educational_value"]


def _dag_edges(workdir) -> set[tuple[str, str]]:
    dot = snakemake(workdir, "--dag", "--quiet").stdout
    names = {m.group(1): m.group(2) for m in re.finditer(r'^\s*(\d+)\[label = "([a-z_]+)', dot, re.M)}
    return {(names[a], names[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M)}


def test_rules_are_wired_after_kmeans(tmp_path):
    edges = _dag_edges(tmp_path)
    for edge in [("ingest", "annotate_quality"), ("annotate_quality", "quality_classifiers"),
                 ("quality_classifiers", "score_quality"), ("ingest", "score_quality"),
                 ("assign_clusters", "cluster_quality_sums"), ("score_quality", "cluster_quality_sums"),
                 ("fit_kmeans", "superclusters"), ("cluster_quality_sums", "superclusters")]:
        assert edge in edges, edge
    # scoring does not depend on the clustering: a new k never re-scores
    assert ("fit_kmeans", "score_quality") not in edges and ("assign_clusters", "score_quality") not in edges


def test_pretrained_classifiers_replace_training_in_the_dag(tmp_path):
    model = tmp_path / "nv.bin"
    model.write_bytes(b"stand-in")
    pretrained = ", ".join(f"{c}: {model}" for c in CRITERIA)
    out = snakemake(tmp_path, "-n", "--config", f"quality={{classifier: {{source: pretrained, pretrained: {{{pretrained}}}}}}}")
    assert "rule quality_classifiers" in out.stdout and "rule annotate_quality" not in out.stdout


@pytest.mark.slow
def test_outputs_follow_the_contract(pipeline):
    results = pipeline / "results"
    ann = pq.read_table(results / "quality" / "annotations.parquet")
    assert ann.column_names == ["id", "shard", "text", *CRITERIA, "teacher"] and ann.num_rows > 100
    metrics = json.loads((results / "quality" / "metrics.json").read_text())
    for c in CRITERIA:
        assert (results / "quality" / "fasttext" / f"{c}.bin").stat().st_size > 0
        m = metrics["criteria"][c]
        assert 0 <= m["heldout_accuracy"] <= 1 and m["heldout_mae"] < m["heldout_mae_predict_mean"], (c, m)
    stats = pq.read_table(results / "clusters" / "stats.parquet")
    assert stats.column_names == ["cluster", "size", "n_chars", *[f"mean_{c}" for c in CRITERIA], "kept", "reason",
                                  "super_cluster"]
    assert stats.schema.field("cluster").type == pa.int32() and stats.schema.field("super_cluster").type == pa.int32()
    st = stats.to_pandas()
    k = np.load(results / "kmeans" / "centroids.npy").shape[0]
    assert st["cluster"].tolist() == list(range(k))
    total = 0
    for corpus in sorted((results / "corpus").glob("*.parquet")):
        scores = pq.read_table(results / "quality" / "scores" / corpus.name)
        ids = pq.read_table(corpus, columns=["id"]).column("id")
        assert scores.column("id").equals(ids) and scores.column_names == ["id", *CRITERIA]
        total += len(ids)
    assert st["size"].sum() == total
    dropped, kept = st[~st["kept"]], st[st["kept"]]
    assert len(dropped) >= 1 and (dropped["reason"] != "").all() and (dropped["super_cluster"] == -1).all()
    assert (kept["reason"] == "").all() and (kept["super_cluster"] >= 0).all()
    doc = json.loads((results / "clusters" / "superclusters.json").read_text())
    assert doc["n_superclusters"] == len(doc["superclusters"]) == kept["super_cluster"].nunique()
    assert doc["cluster_to_supercluster"] == {str(c): int(s) for c, s in zip(kept["cluster"], kept["super_cluster"],
                                                                               strict=True)}
    assert sum(s["n_docs"] for s in doc["superclusters"]) == kept["size"].sum()
    # the planted junk of the test corpus lands mostly in dropped clusters
    docs = []
    for corpus in sorted((results / "corpus").glob("*.parquet")):
        origin = pq.read_table(corpus, columns=["origin"]).column("origin").to_pylist()
        cluster = pq.read_table(results / "kmeans" / "assign" / corpus.name).column("cluster").to_pylist()
        docs += list(zip(origin, cluster, strict=True))
    kept_set = set(kept["cluster"])
    planted = [c in kept_set for o, c in docs if o.startswith("planted/")]
    natural = [c in kept_set for o, c in docs if o.startswith("natural/")]
    print(f"test pipeline: planted in pruned clusters {1 - np.mean(planted):.2f}, natural kept {np.mean(natural):.2f}")
    assert np.mean(natural) >= 0.9 and 1 - np.mean(planted) >= 0.5


@pytest.mark.slow
def test_a_threshold_change_reruns_only_pruning(pipeline_copy):
    config = yaml.safe_load(CI_CONFIG.read_text())
    config["prune"] = {**config.get("prune", {}), "mode": "top_n", "keep_top": 4}
    changed = pipeline_copy / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))  # params compare in key order
    out = snakemake(pipeline_copy, "-n", configfile=changed).stdout
    jobs = set(re.findall(r"^rule (\w+):", out, re.M))
    assert "superclusters" in jobs
    assert not jobs & {"annotate_quality", "quality_classifiers", "score_quality", "cluster_quality_sums", "embed",
                       "fit_kmeans", "assign_clusters"}, jobs
