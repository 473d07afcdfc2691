"""Semantic deduplication inside k-means clusters (SemDeDup, Abbas et al. 2023).

Near-duplicates land in the same cluster, so only pairs inside a cluster are compared. Clusters are
split into ``n_groups`` groups (cluster ``c`` belongs to group ``c % n_groups``); one job per group reads
the assignment and the memory-mapped embeddings of every shard but keeps only the rows of its clusters.

Inside a cluster the documents are ranked by distance to the centroid (closest first, ties by id) and
visited in that order: a document whose cosine similarity to an already kept document exceeds the threshold
is removed, with the most similar earlier kept document named as the one it duplicates; otherwise it is kept.
So every removed document has a kept representative above the threshold, and the choice is deterministic.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from climb.compute.device import resolve_device
from climb.core.io import write_json, write_parquet

log = logging.getLogger("climb.filter.dedup")

FILTER_SCHEMA = pa.schema([("id", pa.string()), ("reason", pa.string()), ("cluster", pa.int32()),
                           ("duplicate_of", pa.string()), ("cosine", pa.float32())])


class DedupError(ValueError):
    """Assignments and embeddings do not fit together."""


def cluster_group(cluster: np.ndarray | int, n_groups: int) -> np.ndarray | int:
    """The dedup group of a cluster id."""
    return cluster % n_groups


def semdedup(vectors: np.ndarray, threshold: float, block: int = 1024,
             device: str = "cpu", overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Greedy dedup of rows already in priority order (first = most preferred to keep).

    Returns ``rep`` (index of the kept row each removed row duplicates, -1 for kept rows) and ``cos``
    (that similarity, 0 for kept rows). Row j is removed iff some kept row i < j has cosine > threshold.
    Similarities are float32 products, on the GPU when ``device`` is a CUDA device; the sequential pass
    inside a block runs on the CPU.

    Memory: beyond the cluster's vectors (one float32 copy, or none with ``overwrite`` on a float32 C-contiguous
    array the caller gives up), working memory is O(block x block): a block of rows is compared with the kept rows
    ``block`` at a time, and the kept rows are compacted to the front of the same array as the pass advances
    (a kept row's slot is always at or before its own, and every row before the current block is done).
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if not overwrite and np.may_share_memory(x, vectors):
        x = x.copy()
    m = len(x)
    rep = np.full(m, -1, dtype=np.int64)
    cos = np.zeros(m, dtype=np.float32)
    kept_idx = np.empty(m, dtype=np.int64)  # indices of kept rows so far, in order; their vectors are xs[:n_kept]
    n_kept = 0
    gpu = device != "cpu"
    if gpu:
        import torch

        xs = torch.from_numpy(x).to(device)
    else:
        xs = x
    for start in range(0, m, block):
        stop = min(start + block, m)
        xb = xs[start:stop]
        nb = stop - start
        best_prev = np.full(nb, -np.inf, dtype=np.float32)
        arg_prev = np.full(nb, -1, dtype=np.int64)
        for c0 in range(0, n_kept, block):  # the kept rows, a tile of `block` at a time
            c1 = min(c0 + block, n_kept)
            sims = xb @ xs[c0:c1].T
            if gpu:
                best, arg = sims.max(dim=1)
                best, arg = best.cpu().numpy(), arg.cpu().numpy()
            else:
                arg = sims.argmax(axis=1)
                best = sims[np.arange(nb), arg]
            better = best > best_prev  # strict: the earliest kept row wins a tie, as one argmax over all would
            best_prev = np.where(better, best, best_prev)
            arg_prev = np.where(better, kept_idx[c0 + arg], arg_prev)
        removed = best_prev > threshold
        s_bb = (xb @ xb.T).cpu().numpy() if gpu else xb @ xb.T
        keep_in_block = np.zeros(nb, dtype=bool)
        for i in range(nb):
            if removed[i]:
                continue
            keep_in_block[i] = True
            removed[i + 1 :] |= s_bb[i, i + 1 :] > threshold
        # the most similar earlier kept row, within the block or before it
        lower = np.tril(np.ones((nb, nb), dtype=bool), k=-1) & keep_in_block[None, :]
        s_in = np.where(lower, s_bb, -np.inf)
        arg_in = s_in.argmax(axis=1)
        best_in = s_in[np.arange(nb), arg_in]
        use_in = best_in > best_prev
        block_rep = np.where(use_in, start + arg_in, arg_prev)
        block_cos = np.where(use_in, best_in, best_prev)
        gone = ~keep_in_block
        rep[start:stop][gone] = block_rep[gone]
        cos[start:stop][gone] = block_cos[gone]
        new = np.flatnonzero(keep_in_block)
        kept_idx[n_kept : n_kept + len(new)] = start + new
        if n_kept != start or len(new) != nb:  # compact: the block's kept rows move down behind earlier kept ones
            if gpu:
                xs[n_kept : n_kept + len(new)] = xb[torch.from_numpy(new).to(device)].clone()
            else:
                xs[n_kept : n_kept + len(new)] = xb[new]  # fancy indexing copies first: overlap is safe
        n_kept += len(new)
    return rep, cos


def _read_group_rows(assign_paths: Sequence[str | Path], embed_paths: Sequence[str | Path], group: int,
                     n_groups: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """ids, clusters, distances and float32 vectors of the group's rows, across all shards."""
    if len(assign_paths) != len(embed_paths):
        raise DedupError(f"{len(assign_paths)} assignment files but {len(embed_paths)} embedding files")
    ids: list[str] = []
    clusters, distances, vectors = [], [], []
    for assign_path, embed_path in zip(assign_paths, embed_paths, strict=True):
        table = pq.read_table(assign_path, columns=["id", "cluster", "distance"])
        emb = np.load(embed_path, mmap_mode="r")
        if emb.ndim != 2 or emb.shape[0] != table.num_rows:
            raise DedupError(f"{embed_path}: shape {emb.shape} does not match the {table.num_rows} rows of "
                             f"{assign_path}")
        cluster = table.column("cluster").to_numpy()
        rows = np.flatnonzero(cluster_group(cluster, n_groups) == group)
        if len(rows) == 0:
            continue
        ids += table.column("id").take(pa.array(rows)).to_pylist()
        clusters.append(cluster[rows])
        distances.append(table.column("distance").to_numpy()[rows])
        vectors.append(np.asarray(emb[rows], dtype=np.float32))
        log.info("%s: %d of %d rows in group %d", assign_path, len(rows), table.num_rows, group)
    if not ids:
        return [], np.empty(0, np.int32), np.empty(0, np.float32), np.empty((0, 0), np.float32)
    return ids, np.concatenate(clusters), np.concatenate(distances), np.concatenate(vectors)


def dedup_group(assign_paths: Sequence[str | Path], embed_paths: Sequence[str | Path], group: int,
                n_groups: int, threshold: float, output: str | Path, counts_output: str | Path,
                block: int = 1024, device: str = "cpu") -> int:
    """Dedup the clusters of one group; write the filter list and per-cluster counts. Returns rows removed."""
    device = resolve_device(device, "dedup.device")
    start = time.perf_counter()
    ids, clusters, distances, vectors = _read_group_rows(assign_paths, embed_paths, group, n_groups)
    members: dict[int, list[int]] = defaultdict(list)
    for i, c in enumerate(clusters.tolist()):
        members[c].append(i)
    rows: list[dict] = []
    counts = []
    for c in sorted(members):
        idx = members[c]
        idx.sort(key=lambda i: (float(distances[i]), ids[i]))
        order = np.array(idx, dtype=np.int64)
        rep, cos = semdedup(vectors[order], threshold, block, device, overwrite=True)  # a fresh copy
        removed = np.flatnonzero(rep >= 0)
        for j in removed.tolist():
            doc, keep = ids[order[j]], ids[order[rep[j]]]
            rows.append({"id": doc, "reason": f"near-duplicate of {keep} (cos {cos[j]:.3f})", "cluster": c,
                         "duplicate_of": keep, "cosine": round(float(cos[j]), 4)})
        counts.append({"cluster": c, "size": len(idx), "removed": len(removed)})
        if len(removed):
            log.info("cluster %d: %d of %d removed", c, len(removed), len(idx))
    rows.sort(key=lambda r: (r["cluster"], r["id"]))
    write_parquet(output, pa.Table.from_pylist(rows, schema=FILTER_SCHEMA))
    write_json(counts_output, {"group": group, "n_groups": n_groups, "threshold": threshold,
                               "size": len(ids), "removed": len(rows), "clusters": counts})
    log.info("group %d of %d: %d of %d documents removed (threshold %.3f) in %.1f s on %s", group, n_groups,
             len(rows), len(ids), threshold, time.perf_counter() - start, device)
    return len(rows)
