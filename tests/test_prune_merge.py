"""Cluster pruning and the Ward merge into super-clusters, on synthetic data (no pipeline needed)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import adjusted_rand_score

from climb.core.io import write_parquet
from climb.superclusters.merge import MergeError, assign_superclusters, prune_and_merge, ward_labels
from climb.superclusters.prune import (
    PruneError,
    aggregate_cluster_sums,
    prune_clusters,
    shard_cluster_sums,
    write_shard_cluster_sums,
)

CRITERIA = ["writing_quality", "advertisement", "informational_value", "educational_value"]
THRESHOLDS = {"writing_quality": 1.0, "advertisement": 2.0, "informational_value": 1.0, "educational_value": 1.0}
PRUNE = {"mode": "threshold", "thresholds": THRESHOLDS, "keep_top": None, "min_size": 1}


def _paper_scale(tmp_path, k=1000, n_good=240, n_domains=21, n_docs=100_000, d=48, n_shards=4, seed=0):
    """k clusters of synthetic unit vectors; n_good of them good, grouped into n_domains well-separated domains."""
    rng = np.random.default_rng(seed)
    domains = rng.normal(size=(n_domains, d))
    domains /= np.linalg.norm(domains, axis=1, keepdims=True)
    good = np.sort(rng.choice(k, n_good, replace=False))
    domain_of = {int(c): i % n_domains for i, c in enumerate(good)}  # every domain gets >= 11 clusters
    centers = rng.normal(size=(k, d))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    for c, dom in domain_of.items():
        v = domains[dom] + 0.08 * rng.normal(size=d)
        centers[c] = v / np.linalg.norm(v)
    cluster = rng.integers(0, k, size=n_docs)
    vectors = centers[cluster] + 0.05 * rng.normal(size=(n_docs, d))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # centroids as k-means would leave them: normalised means of their members
    centroids = np.zeros((k, d))
    np.add.at(centroids, cluster, vectors)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    # per-document scores: good clusters well above every threshold; each bad cluster low on one criterion
    means = np.full((k, len(CRITERIA)), 3.0)
    bad_criterion = {}
    for c in range(k):
        if c not in domain_of:
            j = int(rng.integers(len(CRITERIA)))
            means[c, j] = THRESHOLDS[CRITERIA[j]] - 0.6
            bad_criterion[c] = CRITERIA[j]
    scores = np.clip(means[cluster] + 0.5 * rng.normal(size=(n_docs, len(CRITERIA))), -1, 5)
    n_chars = rng.integers(200, 2000, size=n_docs)
    ids = np.array([f"doc{i:06d}" for i in range(n_docs)])
    np.save(tmp_path / "centroids.npy", centroids.astype(np.float32))
    partials = []
    for s, rows in enumerate(np.array_split(np.arange(n_docs), n_shards)):
        a, sc, co, out = (tmp_path / f"{kind}{s}.parquet" for kind in ("assign", "scores", "corpus", "partial"))
        write_parquet(a, pa.table({"id": ids[rows], "cluster": cluster[rows].astype(np.int32),
                                   "distance": np.zeros(len(rows), np.float32)}))
        write_parquet(sc, pa.table({"id": ids[rows], **{c: scores[rows, j].astype(np.float32)
                                                         for j, c in enumerate(CRITERIA)}}))
        write_parquet(co, pa.table({"id": ids[rows], "n_chars": n_chars[rows]}))
        write_shard_cluster_sums(str(a), str(sc), str(co), str(tmp_path / "centroids.npy"), str(out), CRITERIA)
        partials.append(str(out))
    return {"partials": partials, "good": good, "domain_of": domain_of, "bad_criterion": bad_criterion,
            "cluster": cluster, "n_chars": n_chars, "centroids": centroids}


def test_paper_scale_prune_and_merge_to_21(tmp_path):
    data = _paper_scale(tmp_path)
    stats_path, sc_path = tmp_path / "out" / "stats.parquet", tmp_path / "out" / "superclusters.json"
    prune_and_merge(data["partials"], tmp_path / "centroids.npy", stats_path, sc_path, CRITERIA, PRUNE,
                    {"n_superclusters": 21, "distance_threshold": None})
    stats = pq.read_table(stats_path).to_pandas()
    doc = json.loads(sc_path.read_text())

    assert list(stats.columns) == ["cluster", "size", "n_chars", *[f"mean_{c}" for c in CRITERIA], "kept", "reason",
                                   "super_cluster"]
    assert len(stats) == 1000 and stats["cluster"].tolist() == list(range(1000))
    assert stats["size"].sum() == 100_000
    assert np.array_equal(stats["size"], np.bincount(data["cluster"], minlength=1000))
    assert np.array_equal(stats["n_chars"], np.bincount(data["cluster"], weights=data["n_chars"], minlength=1000))
    # exactly the designed clusters survive (1000 -> 240), and every dropped one says which criterion failed
    assert sorted(stats.loc[stats["kept"], "cluster"]) == sorted(data["good"].tolist())
    dropped = stats.loc[~stats["kept"]]
    assert len(dropped) == 760
    assert (dropped["reason"].str.len() > 0).all()
    for row in dropped.itertuples():
        assert f"mean_{data['bad_criterion'][row.cluster]} " in row.reason, row.reason
    assert (stats.loc[stats["kept"], "reason"] == "").all()
    assert (dropped["super_cluster"] == -1).all()

    # 21 super-clusters, and Ward recovers the planted domains exactly
    assert doc["n_superclusters"] == 21 and len(doc["superclusters"]) == 21
    kept = stats.loc[stats["kept"]]
    truth = [data["domain_of"][c] for c in kept["cluster"]]
    assert adjusted_rand_score(truth, kept["super_cluster"]) == 1.0
    assert sorted(c for sc in doc["superclusters"] for c in sc["clusters"]) == sorted(kept["cluster"])
    assert doc["cluster_to_supercluster"] == {str(c): int(s) for c, s in zip(kept["cluster"], kept["super_cluster"], strict=True)}
    for sc in doc["superclusters"]:
        members = stats.set_index("cluster").loc[sc["clusters"]]
        assert sc["n_docs"] == members["size"].sum() and sc["n_chars"] == members["n_chars"].sum()
        assert sc["name"] == f"sc{sc['id']:02d}"
    assert [sc["n_docs"] for sc in doc["superclusters"]] == sorted((sc["n_docs"] for sc in doc["superclusters"]),
                                                                    reverse=True)
    # same inputs, same bytes
    first = stats_path.read_bytes(), sc_path.read_bytes()
    prune_and_merge(data["partials"], tmp_path / "centroids.npy", stats_path, sc_path, CRITERIA, PRUNE,
                    {"n_superclusters": 21, "distance_threshold": None})
    assert (stats_path.read_bytes(), sc_path.read_bytes()) == first


def _stats(sizes, means):
    stats = pd.DataFrame({"cluster": np.arange(len(sizes), dtype=np.int32), "size": sizes,
                          "n_chars": np.asarray(sizes) * 100})
    for j, c in enumerate(CRITERIA):
        stats[f"mean_{c}"] = [m[j] if m is not None else np.nan for m in means]
    return stats


def test_threshold_reasons_empty_and_small_clusters():
    stats = _stats([10, 0, 2, 10, 10],
                   [(3, 3, 3, 3), None, (3, 3, 3, 3), (0.5, 1.5, 3, 3), (1.0, 2.0, 1.0, 1.0)])
    out = prune_clusters(stats, CRITERIA, mode="threshold", thresholds=THRESHOLDS, min_size=3)
    assert out["kept"].tolist() == [True, False, False, False, True]  # a mean equal to its threshold passes
    assert out["reason"][1].startswith("empty cluster")
    assert out["reason"][2] == "size 2 < min_size 3"
    assert out["reason"][3] == "mean_writing_quality 0.5 < 1; mean_advertisement 1.5 < 2"


def test_top_n_keeps_the_best_and_ranks_the_rest():
    stats = _stats([5] * 6, [(m, m, m, m) for m in (1.0, 4.0, 2.0, 3.0, 0.5, 2.5)])
    out = prune_clusters(stats, CRITERIA, mode="top_n", keep_top=3)
    assert out.loc[out["kept"], "cluster"].tolist() == [1, 3, 5]
    assert out["reason"][2] == "rank 4 of 6 by mean score 2 > keep_top 3"
    assert out["reason"][4].startswith("rank 6 of 6")
    with pytest.raises(PruneError, match="keep_top"):
        prune_clusters(stats, CRITERIA, mode="top_n", keep_top=None)


def test_missing_threshold_is_an_error():
    stats = _stats([5], [(3, 3, 3, 3)])
    with pytest.raises(PruneError, match=r"no threshold for .*educational_value"):
        prune_clusters(stats, CRITERIA, mode="threshold", thresholds={k: v for k, v in THRESHOLDS.items()
                                                                      if k != "educational_value"})


def test_merge_by_distance_threshold_and_small_counts():
    rng = np.random.default_rng(1)
    blobs = np.concatenate([rng.normal(loc=i * 10, scale=0.1, size=(5, 3)) for i in range(3)])
    assert len(set(ward_labels(blobs, distance_threshold=5.0))) == 3
    assert len(set(ward_labels(blobs, n_superclusters=2))) == 2
    assert len(set(ward_labels(blobs[:2], n_superclusters=21))) == 2  # fewer kept clusters than asked
    stats = _stats([4] * 15, [(3, 3, 3, 3)] * 15)
    stats["kept"] = True
    stats["reason"] = ""
    stats.loc[0, ["kept", "reason"]] = [False, "mean_advertisement 1 < 2"]
    out, doc = assign_superclusters(stats, blobs, distance_threshold=5.0)
    assert doc["n_superclusters"] == 3 and out["super_cluster"].iloc[0] == -1
    assert doc["method"]["distance_threshold"] == 5.0
    stats["kept"] = False
    with pytest.raises(MergeError, match="every one of the 15 clusters was pruned"):
        assign_superclusters(stats, blobs, n_superclusters=2)


def test_misaligned_shard_inputs_are_named(tmp_path):
    write_parquet(tmp_path / "a.parquet", pa.table({"id": ["x", "y"], "cluster": np.array([0, 1], np.int32)}))
    write_parquet(tmp_path / "s.parquet", pa.table({"id": ["x", "z"], **{c: [1.0, 2.0] for c in CRITERIA}}))
    write_parquet(tmp_path / "c.parquet", pa.table({"id": ["x", "y"], "n_chars": [5, 6]}))
    with pytest.raises(PruneError, match=r"row 1 has id 'y' but the scores file has 'z'"):
        shard_cluster_sums(tmp_path / "a.parquet", tmp_path / "s.parquet", tmp_path / "c.parquet", CRITERIA, 2)
    with pytest.raises(PruneError, match="outside 0..0"):
        write_parquet(tmp_path / "s.parquet", pa.table({"id": ["x", "y"], **{c: [1.0, 2.0] for c in CRITERIA}}))
        shard_cluster_sums(tmp_path / "a.parquet", tmp_path / "s.parquet", tmp_path / "c.parquet", CRITERIA, 1)
    table = shard_cluster_sums(tmp_path / "a.parquet", tmp_path / "s.parquet", tmp_path / "c.parquet", CRITERIA, 3)
    write_parquet(tmp_path / "p.parquet", table)
    stats = aggregate_cluster_sums([tmp_path / "p.parquet"] * 2, CRITERIA, 3)
    assert stats["size"].tolist() == [2, 2, 0] and stats["n_chars"].tolist() == [10, 12, 0]
    assert stats["mean_advertisement"].iloc[1] == 2.0 and np.isnan(stats["mean_advertisement"].iloc[2])
