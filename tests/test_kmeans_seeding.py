"""k-means++ seeding: the same seeds as scikit-learn's ``kmeans_plusplus``, bit for bit, so clusters do not move."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import kmeans_plusplus

from climb.cluster.kmeans import kmeans_plusplus_init


def clustered(n: int, centres: int, d: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, d))
    x = c[rng.integers(0, centres, n)] + 0.2 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def potential(x: np.ndarray, centres: np.ndarray) -> float:
    d = (x**2).sum(1)[:, None] + (centres**2).sum(1)[None] - 2 * x.astype(np.float64) @ centres.T
    return float(np.maximum(d, 0).min(1).sum())


@pytest.mark.parametrize("n, k, d, block_rows", [(4000, 40, 64, 1500), (6000, 120, 384, 65_536), (500, 3, 8, 7)])
def test_seeds_are_scikit_learns(n, k, d, block_rows):
    x = clustered(n, k, d)
    for seed in range(3):
        expected, _ = kmeans_plusplus(x, k, random_state=seed)
        assert np.array_equal(kmeans_plusplus_init(x, k, seed, block_rows=block_rows), expected)


def test_seeds_spread_over_the_clusters():
    x = clustered(4000, 40)
    rng = np.random.default_rng(0)
    ours = [potential(x, kmeans_plusplus_init(x, 40, seed)) for seed in range(5)]
    drawn = [potential(x, x[rng.choice(len(x), 40, replace=False)]) for _ in range(5)]
    assert np.mean(ours) < 0.8 * np.mean(drawn)  # k rows drawn at random leave planted clusters without a seed


def test_pool_sample_is_seeded_rows_of_the_input():
    x = clustered(3000, 10, seed=1)
    a = kmeans_plusplus_init(x, 16, seed=7, max_points=1000)
    assert a.dtype == np.float32 and a.shape == (16, 64)
    assert np.array_equal(a, kmeans_plusplus_init(x, 16, seed=7, max_points=1000))
    assert not np.array_equal(a, kmeans_plusplus_init(x, 16, seed=8, max_points=1000))
    rows = {r.tobytes() for r in x}
    assert all(r.tobytes() in rows for r in a)


def test_repeated_vectors_and_too_few():
    x = np.repeat(clustered(3, 3), 10, axis=0)
    expected, _ = kmeans_plusplus(x, 5, random_state=0)
    assert np.array_equal(kmeans_plusplus_init(x, 5, seed=0), expected)  # no division by zero once all are seeds
    with pytest.raises(ValueError, match="k=40 seeds from 30 vectors"):
        kmeans_plusplus_init(x, 40, seed=0)
