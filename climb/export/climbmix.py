"""ClimbMix and ClimbLab export (CLIMB stage 8): the documents a user trains on.

ClimbMix draws every super-cluster's usable documents (in a kept cluster, not in any filter list) so that
super-cluster ``s`` contributes ``round(weight_s x token_budget)`` tokens, counted with the pipeline tokenizer
(``length`` of ``tokens/{shard}.idx.parquet``, which includes the end-of-document token a trainer appends).

How documents are drawn, deterministically for a seed and independently of how the corpus is sharded:

1. **Plan** (one job, streams the token indexes, memory O(super-clusters)): each usable document gets a
   key ``u = SipHash(id)`` keyed by the seed (64 bits). A super-cluster with ``A`` usable tokens and target ``T`` repeats
   every document ``floor(T / A)`` times (whole epochs) and takes the remainder ``T mod A`` as one more copy
   of the documents whose key lies below a threshold. The threshold is found on a two-level histogram of
   keys weighted by tokens (2^16 x 2^16 bins), choosing the cut whose tokens are closest to the remainder,
   so the realised tokens miss the target by at most about half a document.
2. **Select** (one job per input shard): applies the plan to the shard and writes its selected copies with
   their text, each copy assigned to a part and an order by a second seeded key.
3. **Write** (one job): for each part, reads that part's rows from every shard's selection (row groups
   are sorted by part), orders them by key (a seeded global shuffle), writes ``part-{n}.parquet``
   (``id``, ``text``, ``super_cluster``, ``cluster``, ``n_tokens``), and finally ``manifest.json``.
   Memory holds one part, whatever the number of shards.

ClimbLab is the whole usable corpus organised by super-cluster: ``climblab/{name}/{shard}.parquet``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import math
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import climb
from climb.core.io import atomic_path, read_json, sha256_file, write_json, write_parquet
from climb.export.blend import read_mixture
from climb.superclusters.superclusters_file import read_superclusters
from climb.tokens.packed import read_filtered_ids, usable_rows

log = logging.getLogger("climb.export.climbmix")

MAX_PARTS = 100_000
BITS = 16
BINS = 1 << BITS
PART_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("text", pa.string()),
    ("super_cluster", pa.int32()),
    ("cluster", pa.int32()),
    ("n_tokens", pa.int32()),
])
SELECT_SCHEMA = pa.schema([
    ("part", pa.int32()),
    ("order", pa.uint64()),
    ("epoch", pa.int32()),
    *PART_SCHEMA,
])
PACKAGES = ("numpy", "pyarrow", "pandas", "snakemake", "tokenizers", "transformers", "sentence-transformers",
            "faiss-cpu", "fasttext-numpy2", "lightgbm", "torch", "scikit-learn", "scipy")


class ExportError(ValueError):
    """Export inputs that are inconsistent (names the file and the reason)."""


def n_parts(token_budget: int, part_tokens: int) -> int:
    """Parts a ClimbMix of ``token_budget`` tokens is written as (fixed by config, not by data)."""
    if token_budget < 1 or part_tokens < 1:
        raise ExportError(f"export.token_budget ({token_budget}) and export.part_tokens ({part_tokens}) must be >= 1")
    parts = max(1, math.ceil(token_budget / part_tokens))
    if parts > MAX_PARTS:
        raise ExportError(f"export.token_budget {token_budget} / export.part_tokens {part_tokens} gives {parts} parts "
                          f"(more than {MAX_PARTS}); raise export.part_tokens (e.g. 1e9 for a 400B-token ClimbMix)")
    return parts


def _keys(ids: Sequence[str], seed: int, tag: str) -> np.ndarray:
    """A seeded 64-bit key per string: SipHash-2-4 (pandas' vectorised ``hash_array``) keyed by the seed and tag.
    Stable across runs, machines, sharding and versions: a key depends only on the string, so the salt below is part
    of ClimbMix's contract, not a module name (renaming it would change which documents every ClimbMix holds)."""
    key = hashlib.blake2b(f"climb.export:{int(seed)}:{tag}".encode(), digest_size=8).hexdigest()  # 16 characters
    values = np.asarray(ids, dtype=object) if len(ids) else np.zeros(0, dtype=object)
    return pd.util.hash_array(values, hash_key=key, categorize=False).astype(np.uint64, copy=False)


def select_keys(ids: Sequence[str], seed: int) -> np.ndarray:
    """The key that decides whether a document is in a super-cluster's partial epoch."""
    return _keys(ids, seed, "select")


def order_keys(ids: Sequence[str], epochs: np.ndarray, seed: int) -> np.ndarray:
    """The key of each copy (document, epoch) that decides its part and its place in the part."""
    return _keys([f"{i}\x00{int(e)}" for i, e in zip(ids, epochs, strict=True)], seed, "order")


def _usable(idx_path: str, cluster_to_sc: dict[int, int], filtered: pa.Array) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    index = pq.read_table(idx_path, columns=["id", "length", "cluster"])
    for column in ("id", "length", "cluster"):
        if index.column(column).null_count:
            raise ExportError(f"{idx_path}: column {column!r} has null values")
    sc, keep = usable_rows(index, cluster_to_sc, filtered)
    return index, sc, keep


def _closest_cut(cum: np.ndarray, target: float) -> int:
    """Index i of ``cum`` (non-decreasing, cum[0] = 0) with cum[i] closest to ``target`` (the lowest on ties)."""
    return int(np.argmin(np.abs(cum - target)))


def plan_export(idx_paths: list[str], superclusters_path: str, filter_paths: list[str], mixture_path: str,
                out_path: str, *, token_budget: int, part_tokens: int, seed: int,
                max_epochs: float | None = None) -> dict[str, Any]:
    """Decide, per super-cluster, whole epochs and the key threshold of the partial epoch; write ``plan.json``."""
    superclusters = read_superclusters(superclusters_path)
    names, cluster_to_sc = superclusters.names, superclusters.cluster_to_sc
    sc_ids = sorted(names)
    weights = read_mixture(mixture_path, sc_ids)
    filtered = read_filtered_ids(filter_paths)
    n_sc = len(sc_ids)
    tokens = np.zeros(n_sc, dtype=np.int64)
    docs = np.zeros(n_sc, dtype=np.int64)
    coarse = np.zeros(n_sc * BINS, dtype=np.float64)

    def rows(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        index, sc, keep = _usable(path, cluster_to_sc, filtered)
        ids = index.column("id").to_numpy(zero_copy_only=False)[keep]
        where = np.searchsorted(sc_ids, sc[keep])  # position of each row's super-cluster in sc_ids
        length = index.column("length").to_numpy().astype(np.int64)[keep]
        if (length <= 0).any():
            raise ExportError(f"{path}: a document has length <= 0 tokens")
        return where, length, select_keys(ids, seed)

    for path in idx_paths:
        p, length, keys = rows(path)
        tokens += np.bincount(p, weights=length, minlength=n_sc).astype(np.int64)
        docs += np.bincount(p, minlength=n_sc)
        coarse += np.bincount(p * BINS + (keys >> np.uint64(48)).astype(np.int64), weights=length,
                              minlength=n_sc * BINS)
    coarse = coarse.reshape(n_sc, BINS)

    targets = np.array([round(weights[s] * token_budget) for s in sc_ids], dtype=np.int64)
    for i, s in enumerate(sc_ids):
        if targets[i] > 0 and tokens[i] == 0:
            raise ExportError(f"{mixture_path}: super-cluster {s} ({names[s]}) has weight {weights[s]} but no usable "
                              "documents (every one pruned or filtered)")
    capped = targets.copy()
    if max_epochs is not None:
        capped = np.minimum(targets, np.floor(tokens * float(max_epochs)).astype(np.int64))
    full = np.where(tokens > 0, capped // np.maximum(tokens, 1), 0)
    remainder = capped - full * tokens
    # level 1: the coarse bin where the cumulative tokens cross the remainder
    cum1 = np.concatenate([np.zeros((n_sc, 1)), np.cumsum(coarse, axis=1)], axis=1)
    crossing = np.array([min(int(np.searchsorted(cum1[i], remainder[i], side="right")) - 1, BINS - 1)
                         for i in range(n_sc)], dtype=np.int64)
    # level 2: within that bin, the fine cut closest to the remainder
    fine = np.zeros((n_sc, BINS), dtype=np.float64)
    if (remainder > 0).any():
        for path in idx_paths:
            p, length, keys = rows(path)
            hit = (keys >> np.uint64(48)).astype(np.int64) == crossing[p]
            sub = ((keys[hit] >> np.uint64(32)) & np.uint64(0xFFFF)).astype(np.int64)
            fine += np.bincount(p[hit] * BINS + sub, weights=length[hit], minlength=n_sc * BINS).reshape(n_sc, BINS)
    super_clusters: dict[str, Any] = {}
    for i, s in enumerate(sc_ids):
        if remainder[i] > 0:
            cum2 = cum1[i, crossing[i]] + np.concatenate([[0.0], np.cumsum(fine[i])])
            cut = _closest_cut(cum2, remainder[i])
            threshold = (int(crossing[i]) << 48) + (cut << 32)
            partial = int(round(cum2[cut]))
            if threshold >= 1 << 64:  # every document: one more whole epoch
                full[i] += 1
                threshold, partial = 0, 0
        else:
            threshold, partial = 0, 0
        planned = int(full[i] * tokens[i] + partial)
        super_clusters[str(s)] = {
            "name": names[s],
            "weight": weights[s],
            "target_tokens": int(targets[i]),
            "available_tokens": int(tokens[i]),
            "available_docs": int(docs[i]),
            "full_epochs": int(full[i]),
            "threshold": threshold,
            "planned_tokens": planned,
            "epochs": planned / int(tokens[i]) if tokens[i] else 0.0,
            "capped_by_max_epochs": bool(capped[i] < targets[i]),
        }
    plan = {
        "token_budget": int(token_budget),
        "part_tokens": int(part_tokens),
        "n_parts": n_parts(token_budget, part_tokens),
        "seed": int(seed),
        "max_epochs": max_epochs,
        "super_clusters": super_clusters,
        "planned_tokens": int(sum(v["planned_tokens"] for v in super_clusters.values())),
    }
    write_json(out_path, plan)
    for s, v in super_clusters.items():
        log.info("super-cluster %s (%s): weight %.4f target %d available %d -> %d full epochs + partial, planned %d",
                 s, v["name"], v["weight"], v["target_tokens"], v["available_tokens"], v["full_epochs"],
                 v["planned_tokens"])
    return plan


def _copies(keys: np.ndarray, where: np.ndarray, full: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return full[where] + (keys < thresholds[where]).astype(np.int64)


def select_shard(corpus_path: str, idx_path: str, superclusters_path: str, filter_paths: list[str], plan_path: str,
                 out_path: str, *, batch_rows: int = 10000) -> dict[str, int]:
    """Apply the plan to one shard: its selected copies with text, part and order key, sorted by part."""
    plan = read_json(plan_path)
    seed = int(plan["seed"])
    parts = int(plan["n_parts"])
    cluster_to_sc = read_superclusters(superclusters_path).cluster_to_sc
    planned = plan["super_clusters"]
    sc_ids = sorted(int(s) for s in planned)
    if sorted(set(cluster_to_sc.values())) != sorted(set(cluster_to_sc.values()) & set(sc_ids)):
        raise ExportError(f"{plan_path} does not cover every super-cluster of {superclusters_path}; rerun the plan")
    full = np.array([planned[str(s)]["full_epochs"] for s in sc_ids], dtype=np.int64)
    thresholds = np.array([planned[str(s)]["threshold"] for s in sc_ids], dtype=np.uint64)
    index, sc, keep = _usable(idx_path, cluster_to_sc, read_filtered_ids(filter_paths))
    ids_all = index.column("id").to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(keep)
    where = np.searchsorted(sc_ids, sc[rows])
    copies = _copies(select_keys(ids_all[rows], seed), where, full, thresholds)
    rows, where, copies = rows[copies > 0], where[copies > 0], copies[copies > 0]
    # texts of the selected rows, streamed from the corpus (same row order as the index)
    corpus = pq.ParquetFile(corpus_path)
    if corpus.metadata.num_rows != index.num_rows:
        raise ExportError(f"{corpus_path} has {corpus.metadata.num_rows} rows but {idx_path} has {index.num_rows}")
    texts: list[pa.Array] = []
    start = 0
    for batch in corpus.iter_batches(batch_size=batch_rows, columns=["id", "text"]):
        lo, hi = np.searchsorted(rows, [start, start + batch.num_rows])
        local = rows[lo:hi] - start
        if len(local):
            got = batch.column("id").take(pa.array(local)).to_numpy(zero_copy_only=False)
            expected = ids_all[rows[lo:hi]]
            if not np.array_equal(got, expected):
                bad = int(np.flatnonzero(got != expected)[0])
                raise ExportError(f"{corpus_path} row {rows[lo + bad]}: id {got[bad]!r} but {idx_path} has "
                                  f"{expected[bad]!r} (the token index must keep corpus row order)")
            texts.append(batch.column("text").take(pa.array(local)))
        start += batch.num_rows
    text = pa.concat_arrays(texts) if texts else pa.array([], pa.string())
    # one row per copy
    rep = np.repeat(np.arange(len(rows)), copies)
    epoch = np.arange(len(rep)) - np.repeat(np.cumsum(copies) - copies, copies)
    ids = ids_all[rows][rep]
    order = order_keys(ids, epoch, seed)
    part = (order % np.uint64(parts)).astype(np.int32)
    table = pa.table({
        "part": pa.array(part, pa.int32()),
        "order": pa.array(order, pa.uint64()),
        "epoch": pa.array(epoch.astype(np.int32), pa.int32()),
        "id": pa.array(ids, pa.string()),
        "text": text.take(pa.array(rep, pa.int64())) if len(rep) else pa.array([], pa.string()),
        "super_cluster": pa.array(np.asarray(sc_ids, dtype=np.int32)[where][rep], pa.int32()),
        "cluster": pa.array(index.column("cluster").to_numpy()[rows][rep].astype(np.int32), pa.int32()),
        "n_tokens": pa.array(index.column("length").to_numpy()[rows][rep].astype(np.int32), pa.int32()),
    }, schema=SELECT_SCHEMA)
    table = table.sort_by([("part", "ascending"), ("order", "ascending"), ("id", "ascending"),
                           ("epoch", "ascending")])
    bounds = np.searchsorted(table.column("part").to_numpy(), np.arange(parts + 1))
    with atomic_path(out_path) as tmp, pq.ParquetWriter(tmp, SELECT_SCHEMA, compression="zstd") as writer:
        for n in range(parts):  # row groups never mix parts, so the writer reads only its part's row groups
            size = int(bounds[n + 1] - bounds[n])
            if size:
                writer.write_table(table.slice(int(bounds[n]), size), row_group_size=min(size, 1 << 20))
    summary = {"documents": int(len(rows)), "copies": int(len(rep)),
               "tokens": int(table.column("n_tokens").to_numpy().astype(np.int64).sum())}
    log.info("%s: %s", idx_path, summary)
    return summary


def code_version() -> dict[str, str | None]:
    """climb's version and the git commit of its checkout (None outside git)."""
    commit = None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(climb.__file__).parent, capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0:
            commit = out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"climb": climb.__version__, "git_commit": commit}


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _read_part(select_paths: list[str], n: int) -> pa.Table:
    tables = []
    for path in select_paths:
        pf = pq.ParquetFile(path)
        column = pf.schema_arrow.get_field_index("part")
        for g in range(pf.metadata.num_row_groups):
            stats = pf.metadata.row_group(g).column(column).statistics
            if stats is not None and stats.has_min_max and not stats.min <= n <= stats.max:
                continue
            rg = pf.read_row_group(g)
            parts = rg.column("part").to_numpy()
            if len(parts) and (parts == n).any() and not (parts == n).all():
                raise ExportError(f"{path}: row group {g} mixes parts {sorted(set(parts.tolist()))}")
            if (parts == n).any():
                tables.append(rg)
    table = pa.concat_tables(tables) if tables else SELECT_SCHEMA.empty_table()
    return table.sort_by([("order", "ascending"), ("id", "ascending"), ("epoch", "ascending")])


def write_climbmix(select_paths: list[str], plan_path: str, mixture_path: str, part_paths: list[str],
                   manifest_path: str, *, config_hash: str, row_group_rows: int = 10000) -> dict[str, Any]:
    """Write the shuffled parts and ``manifest.json``; checks the realised tokens against the plan."""
    plan = read_json(plan_path)
    if len(part_paths) != plan["n_parts"]:
        raise ExportError(f"{plan_path} plans {plan['n_parts']} parts but {len(part_paths)} part paths were given")
    sc_ids = sorted(int(s) for s in plan["super_clusters"])
    realised = dict.fromkeys(sc_ids, 0)
    copies = dict.fromkeys(sc_ids, 0)
    parts = []
    manifest_dir = Path(manifest_path).parent
    for n, path in enumerate(part_paths):
        table = _read_part(select_paths, n).select(PART_SCHEMA.names)
        write_parquet(path, table, row_group_size=row_group_rows)
        sc = table.column("super_cluster").to_numpy()
        tok = table.column("n_tokens").to_numpy().astype(np.int64)
        for s in np.unique(sc):
            realised[int(s)] += int(tok[sc == s].sum())
            copies[int(s)] += int((sc == s).sum())
        parts.append({"path": os.path.relpath(path, manifest_dir), "sha256": sha256_file(path),
                      "documents": table.num_rows, "tokens": int(tok.sum())})
        log.info("part %d: %d documents, %d tokens", n, table.num_rows, int(tok.sum()))
    super_clusters = {}
    for s in sc_ids:
        p = plan["super_clusters"][str(s)]
        if realised[s] != p["planned_tokens"]:
            raise ExportError(f"super-cluster {s}: the selections hold {realised[s]} tokens but {plan_path} planned "
                              f"{p['planned_tokens']}; a selection is stale, rerun export")
        super_clusters[str(s)] = {
            "name": p["name"], "weight": p["weight"], "target_tokens": p["target_tokens"],
            "realised_tokens": realised[s], "available_tokens": p["available_tokens"],
            "available_docs": p["available_docs"], "documents": copies[s], "epochs": p["epochs"],
            "full_epochs": p["full_epochs"], "capped_by_max_epochs": p["capped_by_max_epochs"],
            "relative_error": (realised[s] - p["target_tokens"]) / p["target_tokens"] if p["target_tokens"] else 0.0,
        }
    manifest = {
        "format": "climbmix",
        "columns": PART_SCHEMA.names,
        "n_tokens": "tokens of the pipeline tokenizer, including the end-of-document token",
        "weights": {str(s): plan["super_clusters"][str(s)]["weight"] for s in sc_ids},
        "token_budget": plan["token_budget"],
        "realised_tokens": int(sum(realised.values())),
        "seed": plan["seed"],
        "max_epochs": plan["max_epochs"],
        "super_clusters": super_clusters,
        "parts": parts,
        "mixture_sha256": sha256_file(mixture_path),
        "config_hash": config_hash,
        "code_version": code_version(),
        "packages": package_versions(),
    }
    write_json(manifest_path, manifest)
    log.info("climbmix: %d tokens in %d parts (budget %d)", manifest["realised_tokens"], len(parts),
             plan["token_budget"])
    return manifest


def write_climblab(corpus_paths: list[str], idx_paths: list[str], superclusters_path: str, filter_paths: list[str],
                   out_dir: str, *, batch_rows: int = 10000) -> dict[str, Any]:
    """The whole usable corpus by super-cluster: ``{out_dir}/{name}/{shard}.parquet`` and ``manifest.json``."""
    if len(corpus_paths) != len(idx_paths):
        raise ExportError(f"{len(corpus_paths)} corpus shards but {len(idx_paths)} token indexes")
    superclusters = read_superclusters(superclusters_path)
    names, cluster_to_sc = superclusters.names, superclusters.cluster_to_sc
    filtered = read_filtered_ids(filter_paths)
    totals = {name: {"documents": 0, "tokens": 0, "files": []} for name in names.values()}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        for corpus_path, idx_path in zip(corpus_paths, idx_paths, strict=True):
            shard = Path(corpus_path).name.removesuffix(".parquet")
            index, sc, keep = _usable(idx_path, cluster_to_sc, filtered)
            corpus = pq.read_table(corpus_path, columns=["id", "text"])
            if corpus.num_rows != index.num_rows or not corpus.column("id").equals(index.column("id")):
                raise ExportError(f"{corpus_path} and {idx_path} do not list the same ids in the same order")
            for s, name in sorted(names.items()):
                mask = keep & (sc == s)
                rows = pa.array(np.flatnonzero(mask), pa.int64())
                table = pa.table({
                    "id": corpus.column("id").take(rows),
                    "text": corpus.column("text").take(rows),
                    "super_cluster": pa.array(np.full(len(rows), s, np.int32)),
                    "cluster": index.column("cluster").take(rows).cast(pa.int32()),
                    "n_tokens": index.column("length").take(rows).cast(pa.int32()),
                }, schema=PART_SCHEMA)
                if not table.num_rows:
                    continue
                path = tmp / name / f"{shard}.parquet"
                path.parent.mkdir(exist_ok=True)
                pq.write_table(table, path, compression="zstd", row_group_size=batch_rows)
                totals[name]["documents"] += table.num_rows
                totals[name]["tokens"] += int(pc_sum(table.column("n_tokens")))
                totals[name]["files"].append({"path": f"{name}/{shard}.parquet", "sha256": sha256_file(path)})
        manifest = {"format": "climblab", "columns": PART_SCHEMA.names,
                    "super_clusters": {str(s): {"name": n, **totals[n]} for s, n in sorted(names.items())}}
        write_json(tmp / "manifest.json", manifest)
    return manifest


def pc_sum(array: pa.ChunkedArray | pa.Array) -> int:
    import pyarrow.compute as pc

    return int(pc.sum(array.cast(pa.int64())).as_py() or 0)


def remove_outputs(paths: Sequence[str]) -> None:
    """Delete files or folders (used by tests and by users who rebuild by hand)."""
    for path in paths:
        p = Path(path)
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
