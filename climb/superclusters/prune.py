"""Per-cluster quality aggregation and cluster pruning (CLIMB stage 4).

Each shard contributes partial sums per cluster (documents, characters, summed expected score per
criterion); the sums of all shards give every cluster's size and mean scores. A cluster is then kept
or dropped, and every dropped cluster carries a human-readable reason:

- ``threshold`` mode (NVIDIA's recipe): a cluster is dropped when the mean of any criterion falls
  below that criterion's threshold (advertisement 2.0, the others 1.0 by default);
- ``top_n`` mode: the ``keep_top`` clusters with the highest mean score (the mean of the criterion
  means) are kept, the rest dropped with their rank (the paper goes 1000 -> ~240).

In both modes a cluster with fewer than ``min_size`` documents is dropped first (an empty cluster,
which k-means can leave when shards are assigned after the fit, always is).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from climb.core.io import write_parquet

log = logging.getLogger("climb.superclusters.prune")


class PruneError(ValueError):
    """Inputs or settings of the prune step are inconsistent."""


def _read_ids(path: str | os.PathLike) -> pa.ChunkedArray:
    return pq.read_table(path, columns=["id"]).column("id")


def shard_cluster_sums(
    assign_path: str | os.PathLike,
    scores_path: str | os.PathLike,
    corpus_path: str | os.PathLike,
    criteria: Sequence[str],
    n_clusters: int,
) -> pa.Table:
    """One shard's partial sums per cluster: ``cluster``, ``size``, ``n_chars``, ``sum_<criterion>``.

    The three inputs must list the same ids in the same order (they all follow the corpus row order);
    a mismatch is an error naming the shard file and the first differing row.
    """
    assign = pq.read_table(assign_path, columns=["id", "cluster"])
    scores = pq.read_table(scores_path)
    corpus = pq.read_table(corpus_path, columns=["id", "n_chars"])
    for name, other in (("scores", scores), ("corpus", corpus)):
        if other.num_rows != assign.num_rows:
            raise PruneError(
                f"{assign_path}: {assign.num_rows} rows but {name} file has {other.num_rows} rows "
                f"({scores_path if name == 'scores' else corpus_path}); the files must come from the same corpus shard"
            )
        a_ids = assign.column("id").to_numpy(zero_copy_only=False)
        o_ids = other.column("id").to_numpy(zero_copy_only=False)
        diff = np.nonzero(a_ids != o_ids)[0]
        if diff.size:
            row = int(diff[0])
            raise PruneError(
                f"{assign_path}: row {row} has id {a_ids[row]!r} but the {name} file has {o_ids[row]!r}; "
                "assignments, scores and corpus must follow the same row order"
            )
    missing = [c for c in criteria if c not in scores.column_names]
    if missing:
        raise PruneError(f"{scores_path}: no score column for criterion/criteria {missing} (has {scores.column_names})")
    cluster = assign.column("cluster").to_numpy().astype(np.int64)
    if cluster.size and (cluster.min() < 0 or cluster.max() >= n_clusters):
        bad = int(np.nonzero((cluster < 0) | (cluster >= n_clusters))[0][0])
        raise PruneError(f"{assign_path}: row {bad} has cluster {cluster[bad]}, outside 0..{n_clusters - 1}")
    columns: dict[str, Any] = {
        "cluster": pa.array(np.arange(n_clusters, dtype=np.int32)),
        "size": pa.array(np.bincount(cluster, minlength=n_clusters).astype(np.int64)),
        "n_chars": pa.array(
            np.bincount(cluster, weights=corpus.column("n_chars").to_numpy().astype(np.float64), minlength=n_clusters)
            .round()
            .astype(np.int64)
        ),
    }
    for crit in criteria:
        values = scores.column(crit).to_numpy(zero_copy_only=False).astype(np.float64)
        if np.isnan(values).any():
            row = int(np.nonzero(np.isnan(values))[0][0])
            raise PruneError(f"{scores_path}: row {row}: criterion {crit!r} is NaN")
        columns[f"sum_{crit}"] = pa.array(np.bincount(cluster, weights=values, minlength=n_clusters))
    return pa.table(columns)


def write_shard_cluster_sums(
    assign: str, scores: str, corpus: str, centroids: str, output: str, criteria: Sequence[str]
) -> None:
    """Snakemake entry: partial sums of one shard, for every cluster of the fitted centroids."""
    n_clusters = int(np.load(centroids, mmap_mode="r").shape[0])
    table = shard_cluster_sums(assign, scores, corpus, criteria, n_clusters)
    write_parquet(output, table)
    log.info("%s: %d documents over %d clusters", assign, int(table.column("size").to_numpy().sum()), n_clusters)


def aggregate_cluster_sums(paths: Sequence[str | os.PathLike], criteria: Sequence[str], n_clusters: int) -> pd.DataFrame:
    """Sum the shards' partials: one row per cluster 0..k-1 with ``size``, ``n_chars``, ``mean_<criterion>``.

    The mean of an empty cluster is NaN.
    """
    size = np.zeros(n_clusters, dtype=np.int64)
    n_chars = np.zeros(n_clusters, dtype=np.int64)
    sums = {c: np.zeros(n_clusters, dtype=np.float64) for c in criteria}
    for path in paths:
        part = pq.read_table(path).to_pandas()
        if len(part) != n_clusters or not np.array_equal(part["cluster"].to_numpy(), np.arange(n_clusters)):
            raise PruneError(f"{path}: expected one row per cluster 0..{n_clusters - 1}, got {len(part)} rows")
        missing = [f"sum_{c}" for c in criteria if f"sum_{c}" not in part.columns]
        if missing:
            raise PruneError(f"{path}: missing column(s) {missing}")
        size += part["size"].to_numpy()
        n_chars += part["n_chars"].to_numpy()
        for c in criteria:
            sums[c] += part[f"sum_{c}"].to_numpy()
    stats = pd.DataFrame({"cluster": np.arange(n_clusters, dtype=np.int32), "size": size, "n_chars": n_chars})
    with np.errstate(invalid="ignore", divide="ignore"):
        for c in criteria:
            stats[f"mean_{c}"] = np.where(size > 0, sums[c] / np.maximum(size, 1), np.nan)
    return stats


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def prune_clusters(
    stats: pd.DataFrame,
    criteria: Sequence[str],
    *,
    mode: str = "threshold",
    thresholds: Mapping[str, float] | None = None,
    keep_top: int | None = None,
    min_size: int = 1,
) -> pd.DataFrame:
    """Add ``kept`` (bool) and ``reason`` ("" when kept) to per-cluster ``stats`` (see the module doc)."""
    stats = stats.copy()
    n = len(stats)
    reasons = [""] * n
    size = stats["size"].to_numpy()
    for i in range(n):
        if size[i] == 0:
            reasons[i] = "empty cluster (no documents assigned)"
        elif size[i] < min_size:
            reasons[i] = f"size {int(size[i])} < min_size {min_size}"
    if mode == "threshold":
        thresholds = dict(thresholds or {})
        missing = [c for c in criteria if c not in thresholds]
        if missing:
            raise PruneError(f"prune.thresholds: no threshold for criterion/criteria {missing}; give one per criterion")
        for i in range(n):
            if reasons[i]:
                continue
            below = [
                f"mean_{c} {_fmt(stats[f'mean_{c}'].iat[i])} < {_fmt(thresholds[c])}"
                for c in criteria
                if stats[f"mean_{c}"].iat[i] < thresholds[c]
            ]
            reasons[i] = "; ".join(below)
    elif mode == "top_n":
        if keep_top is None or keep_top < 1:
            raise PruneError(f"prune.keep_top must be a positive integer in top_n mode, got {keep_top!r}")
        overall = stats[[f"mean_{c}" for c in criteria]].mean(axis=1).to_numpy()
        eligible = [i for i in range(n) if not reasons[i]]
        # best first; ties broken by cluster id so the choice is deterministic
        order = sorted(eligible, key=lambda i: (-overall[i], int(stats["cluster"].iat[i])))
        for rank, i in enumerate(order, start=1):
            if rank > keep_top:
                reasons[i] = f"rank {rank} of {len(order)} by mean score {_fmt(overall[i])} > keep_top {keep_top}"
    else:
        raise PruneError(f"prune.mode: unknown mode {mode!r} (threshold or top_n)")
    stats["reason"] = reasons
    stats["kept"] = [r == "" for r in reasons]
    log.info("pruning (%s): kept %d of %d clusters", mode, int(stats["kept"].sum()), n)
    return stats
