"""Merge the surviving clusters into super-clusters (CLIMB stage 5).

The centroids of the kept clusters are merged bottom-up with Ward linkage (scipy), and the tree is
cut either into a target number of super-clusters (``merge.n_superclusters``, 21 in the paper) or at a
distance threshold (``merge.distance_threshold``). Super-clusters are numbered by size (documents,
largest first; ties by their smallest member cluster), so the numbering does not depend on the
order in which scipy happens to label them. They are the domains the mixture search weighs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.cluster.hierarchy import cut_tree, fcluster, linkage

from climb.core.io import write_json, write_parquet
from climb.superclusters.prune import aggregate_cluster_sums, prune_clusters

log = logging.getLogger("climb.superclusters.merge")


class MergeError(ValueError):
    """The kept clusters cannot be merged as configured."""


def ward_labels(
    centroids: np.ndarray, n_superclusters: int | None = None, distance_threshold: float | None = None
) -> np.ndarray:
    """Ward-linkage labels 0..S-1 of ``centroids`` (rows): cut into ``n_superclusters`` or at ``distance_threshold``.

    With fewer rows than ``n_superclusters`` every row is its own super-cluster.
    """
    n = int(centroids.shape[0])
    if n == 0:
        raise MergeError("no clusters to merge")
    if (n_superclusters is None) == (distance_threshold is None):
        raise MergeError("give exactly one of merge.n_superclusters and merge.distance_threshold")
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    tree = linkage(np.asarray(centroids, dtype=np.float64), method="ward", metric="euclidean")
    if distance_threshold is not None:
        return fcluster(tree, t=float(distance_threshold), criterion="distance").astype(np.int64) - 1
    s = min(int(n_superclusters), n)
    return cut_tree(tree, n_clusters=s).reshape(-1).astype(np.int64)


def assign_superclusters(
    stats: pd.DataFrame,
    centroids: np.ndarray,
    *,
    n_superclusters: int | None = None,
    distance_threshold: float | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Merge the kept clusters of ``stats`` (needs ``cluster``, ``size``, ``n_chars``, ``kept``).

    Returns ``stats`` with ``super_cluster`` (int32, -1 for pruned clusters) and the
    ``superclusters.json`` document.
    """
    kept = stats.loc[stats["kept"]].sort_values("cluster")
    if kept.empty:
        raise MergeError(
            f"every one of the {len(stats)} clusters was pruned; nothing to merge "
            "(loosen prune.thresholds or use prune.mode: top_n)"
        )
    ids = kept["cluster"].to_numpy().astype(np.int64)
    if ids.max() >= centroids.shape[0]:
        raise MergeError(f"cluster {ids.max()} has no centroid (centroids has {centroids.shape[0]} rows)")
    if n_superclusters is not None and len(ids) < n_superclusters and distance_threshold is None:
        log.warning("only %d clusters kept, fewer than merge.n_superclusters=%d: each is its own super-cluster",
                    len(ids), n_superclusters)
    raw = ward_labels(centroids[ids], n_superclusters=None if distance_threshold is not None else n_superclusters,
                      distance_threshold=distance_threshold)
    groups: dict[int, list[int]] = {}
    for cluster, label in zip(ids.tolist(), raw.tolist(), strict=True):
        groups.setdefault(label, []).append(cluster)
    size = dict(zip(stats["cluster"].astype(int), stats["size"].astype(int), strict=True))
    chars = dict(zip(stats["cluster"].astype(int), stats["n_chars"].astype(int), strict=True))
    members = sorted(groups.values(), key=lambda m: (-sum(size[c] for c in m), min(m)))
    width = max(2, len(str(len(members) - 1)))
    superclusters = []
    mapping: dict[int, int] = {}
    for sc, clusters in enumerate(members):
        clusters = sorted(clusters)
        for c in clusters:
            mapping[c] = sc
        superclusters.append({
            "id": sc,
            "name": f"sc{sc:0{width}d}",
            "clusters": clusters,
            "n_docs": int(sum(size[c] for c in clusters)),
            "n_chars": int(sum(chars[c] for c in clusters)),
        })
    out = stats.copy()
    out["super_cluster"] = np.array([mapping.get(int(c), -1) for c in out["cluster"]], dtype=np.int32)
    document = {
        "n_superclusters": len(superclusters),
        "superclusters": superclusters,
        "cluster_to_supercluster": {str(c): mapping[c] for c in sorted(mapping)},
        "method": {
            "linkage": "ward",
            "n_superclusters": n_superclusters if distance_threshold is None else None,
            "distance_threshold": distance_threshold,
            "n_clusters": int(len(stats)),
            "n_kept": int(len(ids)),
        },
    }
    log.info("merged %d kept clusters into %d super-clusters", len(ids), len(superclusters))
    return out, document


STATS_ORDER = ("cluster", "size", "n_chars")


def stats_table(stats: pd.DataFrame, criteria: Sequence[str]) -> pa.Table:
    """``clusters/stats.parquet`` with its contract's column order and types."""
    return pa.table({
        "cluster": pa.array(stats["cluster"].to_numpy().astype(np.int32)),
        "size": pa.array(stats["size"].to_numpy().astype(np.int64)),
        "n_chars": pa.array(stats["n_chars"].to_numpy().astype(np.int64)),
        **{f"mean_{c}": pa.array(stats[f"mean_{c}"].to_numpy().astype(np.float64)) for c in criteria},
        "kept": pa.array(stats["kept"].to_numpy().astype(bool)),
        "reason": pa.array(stats["reason"].astype(str).tolist(), type=pa.string()),
        "super_cluster": pa.array(stats["super_cluster"].to_numpy().astype(np.int32)),
    })


def prune_and_merge(
    partials: Sequence[str | os.PathLike],
    centroids_path: str | os.PathLike,
    stats_path: str | os.PathLike,
    superclusters_path: str | os.PathLike,
    criteria: Sequence[str],
    prune: Mapping[str, Any],
    merge: Mapping[str, Any],
) -> None:
    """Snakemake entry: shards' partial sums -> per-cluster stats, pruning, Ward merge; writes both outputs."""
    centroids = np.load(centroids_path).astype(np.float32)
    stats = aggregate_cluster_sums(partials, criteria, centroids.shape[0])
    stats = prune_clusters(
        stats,
        criteria,
        mode=prune["mode"],
        thresholds=prune["thresholds"],
        keep_top=prune.get("keep_top"),
        min_size=prune["min_size"],
    )
    for row in stats.loc[~stats["kept"]].itertuples():
        log.info("dropped cluster %d (%d docs): %s", row.cluster, row.size, row.reason)
    distance_threshold = merge.get("distance_threshold")
    stats, document = assign_superclusters(
        stats,
        centroids,
        n_superclusters=None if distance_threshold is not None else merge["n_superclusters"],
        distance_threshold=distance_threshold,
    )
    write_parquet(stats_path, stats_table(stats, criteria))
    write_json(superclusters_path, document)
