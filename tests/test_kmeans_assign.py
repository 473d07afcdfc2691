"""Assigning a shard's documents to centroids: embeddings read a slice of rows at a time, not mapped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from climb.cluster.kmeans import EmbeddingRows, assign_shard, nearest_centroids
from climb.core.io import write_parquet


def embeddings_file(path: Path, n: int, d: int = 24, seed: int = 0) -> np.ndarray:
    """Unit vectors in float16, written as the embed stage writes them (an .npy opened as a memory map)."""
    x = np.random.default_rng(seed).normal(size=(n, d))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=x.shape)
    out[:] = x
    out.flush()
    del out
    return x


def mapped_paths() -> set[str]:
    return {line.split(maxsplit=5)[5].strip() for line in Path("/proc/self/maps").read_text().splitlines()
            if len(line.split(maxsplit=5)) == 6}


def test_embedding_rows_are_the_file_s_rows_and_not_mapped(tmp_path):
    x = embeddings_file(tmp_path / "e.npy", 1001)
    rows = EmbeddingRows(tmp_path / "e.npy")
    assert len(rows) == 1001 and rows.shape == (1001, 24) and rows.dtype == np.float16
    for part in (slice(0, 1), slice(0, 1001), slice(990, 2000), slice(500, 500), slice(333, 700)):
        assert np.array_equal(rows[part], x[part]), part
    held = rows[0:10]  # alive while the maps are read: a slice of a memory map would keep the file mapped
    assert str(tmp_path / "e.npy") not in mapped_paths(), "a slice maps the file"
    assert held.shape == (10, 24)
    with pytest.raises(IndexError, match="contiguous"):
        rows[::2]


def test_assign_shard_reads_in_batches_as_in_memory(tmp_path):
    x = embeddings_file(tmp_path / "e.npy", 700)
    centroids = x[[3, 80, 400, 650]].astype(np.float32)
    np.save(tmp_path / "c.npy", centroids)
    write_parquet(tmp_path / "corpus.parquet", pa.table({"id": [f"d{i}" for i in range(700)]}))
    assign_shard(str(tmp_path / "corpus.parquet"), str(tmp_path / "e.npy"), str(tmp_path / "c.npy"),
                 str(tmp_path / "a.parquet"), batch_rows=64)
    table = pq.read_table(tmp_path / "a.parquet")
    clusters, distances = nearest_centroids(x, centroids)
    assert table.column("id").to_pylist() == [f"d{i}" for i in range(700)]
    assert np.array_equal(table.column("cluster").to_numpy(), clusters)
    assert np.array_equal(table.column("distance").to_numpy(), distances)
    assert table.column("cluster").to_pylist()[400] == 2
