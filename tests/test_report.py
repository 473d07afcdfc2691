"""Report plots and tables on synthetic pipeline outputs."""

from __future__ import annotations

import re

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from climb.core.io import read_json, save_npy, write_json, write_parquet
from climb.report.pages import (
    characteristic_words,
    pca_2d,
    plot_centroid_map,
    plot_cluster_sizes,
    plot_pruning,
    plot_weights_vs_prior,
    search_report,
    supercluster_contents,
)
from tests.test_export import CLUSTER_TO_SC, make_corpus

WORDS = {0: "eigenvalue matrix determinant", 1: "coupon discount checkout", 2: "socket kernel filesystem"}


def assert_png(path, min_pixels: int = 200) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = mpimg.imread(path)
    assert image.shape[0] >= min_pixels and image.shape[1] >= min_pixels
    assert image[..., :3].std() > 0.05  # not a blank canvas
    return image


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    data = make_corpus(root)
    # texts that say which super-cluster they are from (pruned clusters talk about lottery prizes)
    for path in data["corpus"]:
        table = pq.read_table(path)
        index = {d: i for i, d in enumerate(data["ids"])}
        texts = [f"{WORDS.get(int(data['sc'][index[d]]), 'lottery prize winner')} number {d} common words here"
                 for d in table["id"].to_pylist()]
        write_parquet(path, table.set_column(1, "text", pa.array(texts)))
    k = 10
    rng = np.random.default_rng(1)
    centroids = rng.normal(size=(k, 16)).astype(np.float32)
    save_npy(root / "centroids.npy", centroids)
    size = np.bincount(data["cluster"], minlength=k)
    kept = np.array([c in CLUSTER_TO_SC for c in range(k)])
    stats = pd.DataFrame({
        "cluster": np.arange(k, dtype=np.int32), "size": size, "n_chars": size * 50,
        "mean_writing_quality": np.where(kept, 3.0, 0.5), "mean_advertisement": np.where(kept, 4.0, 1.0),
        "kept": kept, "reason": ["" if x else "writing_quality 0.50 < 1.0; advertisement 1.00 < 2.0" for x in kept],
        "super_cluster": np.array([CLUSTER_TO_SC.get(c, -1) for c in range(k)], dtype=np.int32),
    })
    write_parquet(root / "stats.parquet", pa.Table.from_pandas(stats, preserve_index=False))
    return root, data


def test_cluster_plots(outputs):
    root, _ = outputs
    plot_cluster_sizes(str(root / "stats.parquet"), str(root / "sizes.png"))
    plot_centroid_map(str(root / "centroids.npy"), str(root / "stats.parquet"), str(root / "map.png"))
    assert_png(root / "sizes.png")
    assert_png(root / "map.png")


def test_pruning_table_names_every_pruned_cluster_and_its_reason(outputs):
    root, _ = outputs
    plot_pruning(str(root / "stats.parquet"), {"writing_quality": 1.0, "advertisement": 2.0},
                 str(root / "pruning.png"), str(root / "pruning.html"))
    assert_png(root / "pruning.png")
    page = (root / "pruning.html").read_text()
    rows = re.findall(r"<tr><td class=num>(\d+)</td><td class=num>\d+</td><td class=bad>([^<]*)</td>", page)
    assert [int(c) for c, _ in rows] == [8, 9]
    assert all(reason == "writing_quality 0.50 &lt; 1.0; advertisement 1.00 &lt; 2.0" for _, reason in rows)


def test_supercluster_contents_finds_each_ones_words(outputs):
    root, data = outputs
    words = supercluster_contents(data["corpus"], data["idx"], data["superclusters"], data["filters"],
                                  str(root / "sc.png"), str(root / "sc.html"), n_words=3, sample_docs=50, seed=1)
    for s, expected in WORDS.items():
        assert sorted(words[s]) == sorted(expected.split()), (s, words[s])
    assert_png(root / "sc.png")
    page = (root / "sc.html").read_text()
    assert page.count("class=snip") == 9 and "lottery" not in page  # 3 snippets each, nothing pruned shown
    for s in range(3):
        assert f"<td class=num>{data['tokens'][s]}</td>" in page


def test_characteristic_words_prefer_distinctive_terms():
    words = characteristic_words({0: ["shared alpha alpha"] * 5, 1: ["shared beta beta"] * 5}, 1)
    assert words == {0: ["alpha"], 1: ["beta"]}


def test_pca_is_stable_and_keeps_the_main_axis():
    x = np.zeros((6, 5))
    x[:, 0] = [-3, -2, -1, 1, 2, 3]
    x[:, 1] = [0.1, -0.1, 0.1, -0.1, 0.1, -0.1]
    xy, var = pca_2d(x)
    assert var[0] > 0.99
    assert np.allclose(np.abs(xy[:, 0]), np.abs(x[:, 0]), atol=0.01)
    assert np.allclose(pca_2d(x)[0], xy)


def test_search_plots_and_weights_vs_prior(outputs, tmp_path):
    root, data = outputs
    rng = np.random.default_rng(0)
    rounds, weights, scores = [], [], []
    for r, n in [(1, 6), (2, 3), (3, 2)]:
        for i in range(n):
            w = rng.dirichlet(np.ones(3))
            mix = tmp_path / f"round{r}" / f"mix{i}"
            entry = {"weights": {str(s): float(w[s]) for s in range(3)}}
            if r > 1:
                entry["predicted"] = float(w[0])
            write_json(mix / "weights.json", entry)
            write_json(mix / "scores" / "general.json", {"objective": float(w[0] + 0.01 * i)})
            rounds.append(r)
            weights.append(str(mix / "weights.json"))
            scores.append(str(mix / "scores" / "general.json"))
    write_json(tmp_path / "final.json", {"weights": {"0": 0.7, "1": 0.2, "2": 0.1}, "predicted": 0.69})
    write_json(tmp_path / "prior.json", {"prior": {"0": 0.3, "1": 0.3, "2": 0.4}})
    import lightgbm as lgb

    x = np.array([[read_json(w)["weights"][str(s)] for s in range(3)] for w in weights])
    y = np.array([read_json(p)["objective"] for p in scores])
    booster = lgb.train({"objective": "regression", "min_data_in_leaf": 1, "verbose": -1}, lgb.Dataset(x, y), 20)
    booster.save_model(str(tmp_path / "predictor.txt"))
    history = search_report(rounds, weights, scores, data["superclusters"], str(tmp_path / "final.json"),
                            str(tmp_path / "mix.png"), str(tmp_path / "pred.png"), str(tmp_path / "obj.png"),
                            model_path=str(tmp_path / "predictor.txt"))
    assert list(history["round"]) == rounds and history["predicted"].notna().sum() == 5
    plot_weights_vs_prior(str(tmp_path / "final.json"), str(tmp_path / "prior.json"), data["superclusters"],
                          str(tmp_path / "final.png"))
    for name in ("mix.png", "pred.png", "obj.png", "final.png"):
        assert_png(tmp_path / name)
    write_json(tmp_path / "round1" / "mix0" / "scores" / "general.json", {"objective": None})
    with pytest.raises(ValueError, match="no finite `objective`"):
        search_report(rounds, weights, scores, data["superclusters"], str(tmp_path / "final.json"),
                      str(tmp_path / "a.png"), str(tmp_path / "b.png"), str(tmp_path / "c.png"))
