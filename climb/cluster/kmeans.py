"""Spherical k-means with faiss: fit on a seeded sample of fixed shards, then assign every shard."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from climb.core.io import save_npy, write_json, write_parquet

log = logging.getLogger(__name__)


def load_embeddings(path: str | Path) -> np.ndarray:
    """A shard's embeddings, memory-mapped (float16)."""
    return np.load(path, mmap_mode="r")


class EmbeddingRows:
    """A shard's embeddings (``.npy``) read from the file a slice of rows at a time, not mapped: a pass over them
    holds one slice in memory, where a memory map keeps every page it has read resident in the process (its peak
    RSS, and what SLURM accounts, then grows with the shard)."""

    def __init__(self, path: str | Path):
        mapped = load_embeddings(path)  # the header: shape, dtype and where the rows start
        if mapped.ndim != 2 or not mapped.flags.c_contiguous:
            raise ValueError(f"{path}: expected a 2-D C-ordered array of embeddings, got shape {mapped.shape}")
        self.path, self.shape, self.dtype, self.offset = str(path), mapped.shape, mapped.dtype, mapped.offset
        del mapped

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, step = rows.indices(self.shape[0])
        if step != 1:
            raise IndexError("EmbeddingRows reads contiguous slices of rows only")
        n, dim = max(stop - start, 0), self.shape[1]
        return np.fromfile(self.path, dtype=self.dtype, count=n * dim,
                           offset=self.offset + start * dim * self.dtype.itemsize).reshape(n, dim)


def sample_vectors(paths: list[str], sample_size: int, seed: int) -> tuple[np.ndarray, dict[str, int]]:
    """A seeded sample of rows across shards, in proportion to their size, as float32 unit vectors."""
    sizes = [load_embeddings(p).shape[0] for p in paths]
    total = sum(sizes)
    if total == 0:
        raise ValueError(f"no vectors to fit k-means on in {paths}")
    rng = np.random.default_rng(seed)
    take = min(sample_size, total)
    chosen = np.sort(rng.choice(total, size=take, replace=False))
    bounds = np.cumsum([0, *sizes])
    parts, per_shard = [], {}
    for i, path in enumerate(paths):
        local = chosen[(chosen >= bounds[i]) & (chosen < bounds[i + 1])] - bounds[i]
        per_shard[Path(path).name] = int(len(local))
        if len(local):
            parts.append(np.asarray(load_embeddings(path)[local], dtype=np.float32))
    vectors = np.ascontiguousarray(np.concatenate(parts))
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors, per_shard


def use_gpu(gpu: str) -> bool:
    """cluster.gpu yes|no|auto -> whether faiss fits on a GPU; fails when one was asked for or given to the job and
    faiss sees none (e.g. PyPI's faiss-cpu installed over conda's faiss-gpu; climb.compute.device)."""
    from climb.compute.device import resolve_device

    requested = {"yes": "cuda", "no": "cpu", "auto": "auto"}[gpu]
    return resolve_device(requested, "cluster.gpu", backend="faiss") == "cuda"


def kmeans_plusplus_init(vectors: np.ndarray, k: int, seed: int, max_points: int = 50_000,
                         block_rows: int = 65_536) -> np.ndarray:
    """k-means++ seeds (Arthur & Vassilvitskii) from at most ``max_points`` sampled vectors: the same seeds, bit for
    bit, as scikit-learn's ``kmeans_plusplus(pool, k, random_state=seed)``, several times faster.

    Random initialisation lets small, tight clusters (boilerplate, spam) share a centroid with a neighbour;
    k-means++ spreads the seeds so they get their own. Each step draws ``2 + ln k`` candidates with probability
    proportional to the squared distance to the nearest seed so far and keeps the one that lowers the total most.
    scikit-learn computes each step's distances on float64 copies of ~1,000-row chunks of the float32 pool; here
    the pool is converted once and the same float64 products run in blocks of ``block_rows`` (the block size does
    not change a bit of the result), so the seeds, and every cluster downstream, stay as they were.
    """
    rng = np.random.default_rng(seed)
    pool = vectors if len(vectors) <= max_points else vectors[np.sort(rng.choice(len(vectors), max_points, replace=False))]
    pool = np.ascontiguousarray(pool, dtype=np.float32)
    n = len(pool)
    if k > n:
        raise ValueError(f"k-means++ needs k={k} seeds from {n} vectors")
    random_state = np.random.RandomState(seed)  # scikit-learn's stream: the first row, then each step's draws
    trials = 2 + int(np.log(k))
    weights = np.ones(n, dtype=np.float32)
    pool64 = pool.astype(np.float64)
    norms64 = np.einsum("ij,ij->i", pool64, pool64)

    def squared_distances(ids: np.ndarray) -> np.ndarray:  # (len(ids), n) float32, as scikit-learn rounds them
        centers = pool64[ids]
        center_norms = np.einsum("ij,ij->i", centers, centers)[:, None]
        out = np.empty((len(ids), n), dtype=np.float32)
        for start in range(0, n, block_rows):
            block = slice(start, start + block_rows)
            distances = -2 * (centers @ pool64[block].T)
            distances += center_norms
            distances += norms64[None, block]
            out[:, block] = distances
        return np.maximum(out, 0, out=out)

    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = random_state.choice(n, p=weights / weights.sum())
    closest = squared_distances(chosen[:1])
    potential = closest @ weights
    closest = closest[0]
    for c in range(1, k):
        candidates = np.searchsorted(np.cumsum(weights * closest), random_state.uniform(size=trials) * potential)
        np.clip(candidates, None, n - 1, out=candidates)
        merged = np.minimum(closest, squared_distances(candidates))
        potentials = merged @ weights.reshape(-1, 1)
        best = int(np.argmin(potentials))
        potential, closest, chosen[c] = potentials[best], merged[best], candidates[best]
    return pool[chosen]


def fit_centroids(vectors: np.ndarray, k: int, niter: int = 25, nredo: int = 1, seed: int = 0,
                  gpu: bool = False, init: str = "kmeans++", init_max_points: int = 50_000) -> tuple[np.ndarray, float]:
    """Spherical k-means centroids (unit rows, float32) and the objective, best of ``nredo`` runs."""
    import faiss

    n, d = vectors.shape
    if k > n:
        raise ValueError(f"cluster.k={k} is more than the {n} vectors sampled to fit on; lower cluster.k")
    best: tuple[np.ndarray, float] | None = None
    for run in range(nredo):
        run_seed = seed + 7919 * run
        km = faiss.Kmeans(d, k, niter=niter, seed=run_seed, spherical=True, gpu=gpu, verbose=False,
                          max_points_per_centroid=max(1, -(-n // k)), min_points_per_centroid=1)
        start = kmeans_plusplus_init(vectors, k, run_seed, init_max_points) if init == "kmeans++" else None
        km.train(vectors, init_centroids=start)
        objective = float(km.obj[-1]) if len(km.obj) else float("nan")
        log.info("k-means run %d/%d: objective %.4f", run + 1, nredo, objective)
        if best is None or objective > best[1]:  # spherical: the objective is a sum of similarities
            best = (np.array(km.centroids, dtype=np.float32), objective)
    assert best is not None
    centroids = np.ascontiguousarray(best[0])
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return centroids, best[1]


def fit_kmeans(embedding_paths: list[str], centroids_path: str, report_path: str, k: int, sample_size: int,
               niter: int = 25, nredo: int = 1, seed: int = 0, gpu: str = "auto", init: str = "kmeans++",
               init_max_points: int = 50_000, threads: int | None = None) -> None:
    """Fit k-means on a seeded sample of the given shards; write the centroids and a fit report."""
    import faiss

    if threads:
        faiss.omp_set_num_threads(threads)
    on_gpu = use_gpu(gpu)  # first: a GPU job without a usable GPU stops before reading the sample
    start = time.perf_counter()
    vectors, per_shard = sample_vectors(embedding_paths, sample_size, seed)
    log.info("fitting k-means k=%d on %d vectors of dim %d (%s)", k, *vectors.shape, "GPU" if on_gpu else "CPU")
    centroids, objective = fit_centroids(vectors, k, niter, nredo, seed, on_gpu, init, init_max_points)
    save_npy(centroids_path, centroids)
    write_json(report_path, {"k": k, "dim": int(vectors.shape[1]), "sample": int(len(vectors)),
                             "sample_per_shard": per_shard, "niter": niter, "nredo": nredo, "seed": seed, "init": init,
                             "objective": round(objective, 6), "gpu": on_gpu})
    log.info("k-means fit in %.1f s, objective %.4f", time.perf_counter() - start, objective)


def nearest_centroids(vectors: np.ndarray | EmbeddingRows, centroids: np.ndarray,
                      batch_rows: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Cluster (int32) and cosine distance (float32) of each vector, in batches of rows."""
    import faiss

    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    clusters = np.empty(len(vectors), dtype=np.int32)
    distances = np.empty(len(vectors), dtype=np.float32)
    for start in range(0, len(vectors), batch_rows):
        chunk = np.ascontiguousarray(vectors[start:start + batch_rows], dtype=np.float32)
        sims, idx = index.search(chunk, 1)
        clusters[start:start + len(chunk)] = idx[:, 0]
        distances[start:start + len(chunk)] = 1.0 - sims[:, 0]
    return clusters, distances


def assign_shard(corpus_path: str, embeddings_path: str, centroids_path: str, out_path: str,
                 batch_rows: int = 65536) -> None:
    """Assign every document of a shard to its nearest centroid: ``id``, ``cluster``, ``distance``."""
    ids = pq.read_table(corpus_path, columns=["id"]).column("id")
    vectors = EmbeddingRows(embeddings_path)
    if len(ids) != vectors.shape[0]:
        raise ValueError(f"{embeddings_path} has {vectors.shape[0]} rows but {corpus_path} has {len(ids)}: "
                         "re-run the embed rule for this shard")
    centroids = np.load(centroids_path)
    clusters, distances = nearest_centroids(vectors, centroids, batch_rows)
    table = pa.table({"id": ids, "cluster": pa.array(clusters, pa.int32()), "distance": pa.array(distances, pa.float32())})
    write_parquet(out_path, table)
    log.info("assigned %d documents of %s to %d clusters", len(ids), corpus_path, len(np.unique(clusters)))
