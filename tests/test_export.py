"""ClimbMix / ClimbLab export and blends on synthetic inputs (token indexes, corpus shards, super-clusters)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from climb.core.io import read_json, write_json, write_parquet
from climb.export.blend import MixtureError, megatron_data_path, read_mixture, write_blends
from climb.export.climbmix import (
    ExportError,
    n_parts,
    plan_export,
    select_shard,
    sha256_file,
    write_climblab,
    write_climbmix,
)

# clusters 0-2 -> super-cluster 0, 3-5 -> 1, 6-7 -> 2; 8 and 9 are pruned
CLUSTER_TO_SC = {0: 0, 1: 0, 2: 0, 3: 1, 4: 1, 5: 1, 6: 2, 7: 2}


def make_corpus(root: Path, n_docs: int = 1800, n_shards: int = 3, seed: int = 0) -> dict:
    """Corpus shards + token indexes + superclusters.json + one filter list under ``root``."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"doc{i:05d}" for i in range(n_docs)])
    length = rng.integers(20, 200, n_docs)
    cluster = rng.integers(0, 10, n_docs)
    shard_of = np.arange(n_docs) % n_shards
    corpus_paths, idx_paths = [], []
    for s in range(n_shards):
        rows = np.flatnonzero(shard_of == s)
        corpus = root / "corpus" / f"shard{s}.parquet"
        idx = root / "tokens" / f"shard{s}.idx.parquet"
        write_parquet(corpus, pa.table({"id": ids[rows], "text": [f"text of {i} " * 3 for i in ids[rows]],
                                        "n_chars": pa.array([30] * len(rows), pa.int64())}))
        write_parquet(idx, pa.table({"id": ids[rows], "offset": pa.array(np.cumsum(length[rows]) - length[rows]),
                                     "length": pa.array(length[rows], pa.int32()),
                                     "cluster": pa.array(cluster[rows], pa.int32())}))
        corpus_paths.append(str(corpus))
        idx_paths.append(str(idx))
    superclusters = {
        "n_superclusters": 3,
        "superclusters": [{"id": s, "name": f"sc{s:02d}", "clusters": [c for c, v in CLUSTER_TO_SC.items() if v == s],
                           "n_docs": 0, "n_chars": 0} for s in range(3)],
        "cluster_to_supercluster": {str(c): s for c, s in CLUSTER_TO_SC.items()},
    }
    write_json(root / "clusters" / "superclusters.json", superclusters)
    filtered = ids[rng.random(n_docs) < 0.05]
    write_parquet(root / "filter" / "dedup.parquet", pa.table({"id": filtered, "reason": ["dup"] * len(filtered)}))
    usable = np.array([c in CLUSTER_TO_SC for c in cluster]) & ~np.isin(ids, filtered)
    sc = np.array([CLUSTER_TO_SC.get(int(c), -1) for c in cluster])
    return {
        "corpus": corpus_paths, "idx": idx_paths, "superclusters": str(root / "clusters" / "superclusters.json"),
        "filters": [str(root / "filter" / "dedup.parquet")], "ids": ids, "length": length, "cluster": cluster,
        "usable": usable, "sc": sc, "filtered": set(filtered.tolist()),
        "tokens": {s: int(length[usable & (sc == s)].sum()) for s in range(3)},
    }


def run_export(data: dict, out: Path, weights: dict, *, budget: int, part_tokens: int, seed: int = 3,
               max_epochs: float | None = None, corpus: list[str] | None = None, idx: list[str] | None = None) -> dict:
    corpus = corpus or data["corpus"]
    idx = idx or data["idx"]
    mixture = out / "final_mixture.json"
    write_json(mixture, {"weights": {str(k): v for k, v in weights.items()}, "predicted": 0.0})
    plan = plan_export(idx, data["superclusters"], data["filters"], str(mixture), str(out / "plan.json"),
                       token_budget=budget, part_tokens=part_tokens, seed=seed, max_epochs=max_epochs)
    selects = []
    for c, i in zip(corpus, idx, strict=True):
        path = out / "select" / Path(c).name
        select_shard(c, i, data["superclusters"], data["filters"], str(out / "plan.json"), str(path), batch_rows=97)
        selects.append(str(path))
    parts = [str(out / f"part-{n:05d}.parquet") for n in range(plan["n_parts"])]
    return write_climbmix(selects, str(out / "plan.json"), str(mixture), parts, str(out / "manifest.json"),
                          config_hash="abc")


def read_parts(out: Path, manifest: dict) -> pa.Table:
    return pa.concat_tables([pq.read_table(out / p["path"]) for p in manifest["parts"]])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def test_realised_tokens_meet_weight_times_budget(data, tmp_path):
    # super-cluster 1 gets far more than it holds (repeated ~3x), 0 is subsampled, 2 is left out
    budget = 3 * data["tokens"][1] + data["tokens"][0] // 3
    weights = {0: (data["tokens"][0] // 3) / budget, 1: 3 * data["tokens"][1] / budget}
    weights[2] = 0.0
    total = sum(weights.values())
    weights = {k: v / total for k, v in weights.items()}
    manifest = run_export(data, tmp_path, weights, budget=budget, part_tokens=-(-budget // 4))
    table = read_parts(tmp_path, manifest)
    assert manifest["token_budget"] == budget and len(manifest["parts"]) == 4
    for s in (0, 1):
        target = weights[s] * budget
        realised = int(np.sum(table.filter(pa.compute.equal(table["super_cluster"], s))["n_tokens"].to_numpy()))
        assert manifest["super_clusters"][str(s)]["realised_tokens"] == realised
        assert abs(realised - target) <= 0.01 * target, (s, realised, target)
        assert abs(realised - target) <= 200  # at most about one document off
    assert manifest["super_clusters"]["2"]["realised_tokens"] == 0
    # super-cluster 1 is repeated: 3 whole epochs, every usable document of it 3 times (or 4)
    sc1 = Counter(table.filter(pa.compute.equal(table["super_cluster"], 1))["id"].to_pylist())
    usable1 = set(data["ids"][data["usable"] & (data["sc"] == 1)].tolist())
    assert set(sc1) == usable1 and set(sc1.values()) <= {3, 4}
    assert manifest["super_clusters"]["1"]["full_epochs"] == 3
    assert manifest["super_clusters"]["1"]["epochs"] == pytest.approx(3.0, abs=0.01)
    # nothing pruned or filtered, and every row carries its own cluster, super-cluster and token count
    ids = table["id"].to_pylist()
    assert not set(ids) & data["filtered"]
    pos = {d: i for i, d in enumerate(data["ids"])}
    rows = np.array([pos[d] for d in ids])
    assert np.array_equal(table["cluster"].to_numpy(), data["cluster"][rows])
    assert np.array_equal(table["super_cluster"].to_numpy(), data["sc"][rows])
    assert np.array_equal(table["n_tokens"].to_numpy(), data["length"][rows])
    assert table.column_names == ["id", "text", "super_cluster", "cluster", "n_tokens"]
    assert table["text"][0].as_py() == f"text of {ids[0]} " * 3


def test_parts_match_manifest_and_are_shuffled(data, tmp_path):
    budget = sum(data["tokens"].values())
    manifest = run_export(data, tmp_path, {0: 0.5, 1: 0.3, 2: 0.2}, budget=budget, part_tokens=-(-budget // 3))
    assert len(manifest["parts"]) == 3
    for part in manifest["parts"]:
        path = tmp_path / part["path"]
        assert sha256_file(path) == part["sha256"]
        table = pq.read_table(path)
        assert table.num_rows == part["documents"] and int(table["n_tokens"].to_numpy().sum()) == part["tokens"]
        # parts hold about part_tokens each, every super-cluster mixed in, not sorted by shard or super-cluster
        assert abs(part["tokens"] - budget / 3) < 0.15 * budget / 3
        sc = table["super_cluster"].to_numpy()
        assert len(set(sc[:50].tolist())) == 3
        assert table["id"].to_pylist() != sorted(table["id"].to_pylist())
    assert manifest["config_hash"] == "abc" and manifest["code_version"]["climb"]
    assert "pyarrow" in manifest["packages"] and manifest["mixture_sha256"] == sha256_file(tmp_path / "final_mixture.json")


def test_same_seed_same_bytes_other_seed_other_sample(data, tmp_path, monkeypatch):
    # the git commit is pinned: other work committed between the runs would change it (tested in the pipeline test)
    monkeypatch.setattr("climb.export.climbmix.code_version", lambda: {"climb": "test", "git_commit": "0" * 40})
    budget = sum(data["tokens"].values()) // 2
    weights = {0: 0.2, 1: 0.5, 2: 0.3}
    a = run_export(data, tmp_path / "a", weights, budget=budget, part_tokens=-(-budget // 2))
    b = run_export(data, tmp_path / "b", weights, budget=budget, part_tokens=-(-budget // 2))
    c = run_export(data, tmp_path / "c", weights, budget=budget, part_tokens=budget // 2, seed=4)
    assert {k: v for k, v in a.items() if a[k] != b.get(k)} == {}
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    assert [p["sha256"] for p in a["parts"]] != [p["sha256"] for p in c["parts"]]


def test_selection_does_not_depend_on_sharding(data, tmp_path):
    """The same documents in two shards instead of three: the same documents are drawn, in the same parts."""
    table = pa.concat_tables([pq.read_table(p) for p in data["corpus"]])
    index = pa.concat_tables([pq.read_table(p) for p in data["idx"]])
    corpus, idx = [], []
    for s, (lo, hi) in enumerate([(0, 700), (700, table.num_rows)]):
        corpus.append(str(tmp_path / "reshard" / f"r{s}.parquet"))
        idx.append(str(tmp_path / "reshard" / f"r{s}.idx.parquet"))
        write_parquet(corpus[-1], table.slice(lo, hi - lo))
        write_parquet(idx[-1], index.slice(lo, hi - lo))
    budget = sum(data["tokens"].values())
    weights = {0: 0.1, 1: 0.6, 2: 0.3}
    a = run_export(data, tmp_path / "three", weights, budget=budget, part_tokens=-(-budget // 2))
    b = run_export(data, tmp_path / "two", weights, budget=budget, part_tokens=budget // 2, corpus=corpus, idx=idx)
    assert [p["sha256"] for p in a["parts"]] == [p["sha256"] for p in b["parts"]]


def test_max_epochs_caps_repetition(data, tmp_path):
    budget = 10 * data["tokens"][2]
    manifest = run_export(data, tmp_path, {0: 0.0, 1: 0.0, 2: 1.0}, budget=budget, part_tokens=budget, max_epochs=2)
    sc2 = manifest["super_clusters"]["2"]
    assert sc2["capped_by_max_epochs"] and sc2["realised_tokens"] == 2 * data["tokens"][2]
    assert sc2["epochs"] == pytest.approx(2.0)


def test_weight_on_an_empty_supercluster_is_an_error(data, tmp_path):
    sc = json.loads(Path(data["superclusters"]).read_text())
    sc["superclusters"].append({"id": 3, "name": "sc03", "clusters": [], "n_docs": 0, "n_chars": 0})
    path = tmp_path / "superclusters.json"
    write_json(path, sc)
    write_json(tmp_path / "mix.json", {"weights": {"0": 0.5, "3": 0.5}})
    with pytest.raises(ExportError, match="super-cluster 3 .*no usable"):
        plan_export(data["idx"], str(path), data["filters"], str(tmp_path / "mix.json"), str(tmp_path / "plan.json"),
                    token_budget=1000, part_tokens=1000, seed=1)


@pytest.mark.parametrize(("weights", "message"), [
    ({"0": 0.5, "1": 0.6}, "sum to"),
    ({"0": 1.0, "7": 0.0}, "weights key '7'"),
    ({"0": -0.5, "1": 1.5}, "weights key '0'"),
    ({"x": 1.0}, "not a super-cluster id"),
])
def test_bad_mixture_names_the_key(tmp_path, weights, message):
    write_json(tmp_path / "mix.json", {"weights": weights})
    with pytest.raises(MixtureError, match=message):
        read_mixture(tmp_path / "mix.json", [0, 1, 2])


def test_n_parts_from_config():
    assert n_parts(1000, 300) == 4 and n_parts(1000, 1000) == 1 and n_parts(10, 1000) == 1
    with pytest.raises(ExportError):
        n_parts(0, 10)
    with pytest.raises(ExportError, match="raise export.part_tokens"):
        n_parts(400 * 10**9, 250_000)  # paper scale with the default part size: 1.6M parts


def test_blends(data, tmp_path):
    write_json(tmp_path / "mix.json", {"weights": {"0": 0.25, "1": 0.75, "2": 0.0}})
    plain = write_blends(str(tmp_path / "mix.json"), data["superclusters"], str(tmp_path / "megatron.txt"),
                         str(tmp_path / "weights.json"), "/data/climblab/{name}/{name}_text_document")
    assert plain == {"sc00": 0.25, "sc01": 0.75, "sc02": 0.0}
    assert read_json(tmp_path / "weights.json") == plain
    line = (tmp_path / "megatron.txt").read_text().strip()
    assert line == "0.25 /data/climblab/sc00/sc00_text_document 0.75 /data/climblab/sc01/sc01_text_document"
    with pytest.raises(MixtureError, match="unknown field"):
        megatron_data_path({0: 1.0}, {0: "sc00"}, "{shard}")


def test_climblab_holds_every_usable_document_once(data, tmp_path):
    manifest = write_climblab(data["corpus"], data["idx"], data["superclusters"], data["filters"],
                              str(tmp_path / "climblab"))
    seen = []
    for s in range(3):
        folder = tmp_path / "climblab" / f"sc{s:02d}"
        files = sorted(folder.glob("*.parquet"))
        assert [f.name for f in files] == ["shard0.parquet", "shard1.parquet", "shard2.parquet"]
        table = pa.concat_tables([pq.read_table(f) for f in files])
        assert set(table["super_cluster"].to_pylist()) == {s}
        assert int(table["n_tokens"].to_numpy().sum()) == data["tokens"][s] == manifest["super_clusters"][str(s)]["tokens"]
        seen += table["id"].to_pylist()
    assert sorted(seen) == sorted(data["ids"][data["usable"]].tolist())
    assert not list(tmp_path.glob(".climblab*"))  # no temporary folder left behind


def test_stale_selection_is_detected(data, tmp_path):
    budget = sum(data["tokens"].values()) // 2
    run_export(data, tmp_path, {0: 0.2, 1: 0.5, 2: 0.3}, budget=budget, part_tokens=budget)
    plan = read_json(tmp_path / "plan.json")
    plan["super_clusters"]["0"]["planned_tokens"] += 1
    write_json(tmp_path / "plan.json", plan)
    selects = sorted(str(p) for p in (tmp_path / "select").glob("*.parquet"))
    with pytest.raises(ExportError, match="super-cluster 0: the selections hold"):
        write_climbmix(selects, str(tmp_path / "plan.json"), str(tmp_path / "final_mixture.json"),
                       [str(tmp_path / "p.parquet")], str(tmp_path / "m.json"), config_hash="x")


def test_selections_keep_parts_in_separate_row_groups(data, tmp_path):
    """The writer reads one part at a time: every row group of a selection holds a single part."""
    budget = sum(data["tokens"].values())
    run_export(data, tmp_path, {0: 0.4, 1: 0.4, 2: 0.2}, budget=budget, part_tokens=-(-budget // 5))
    for path in (tmp_path / "select").glob("*.parquet"):
        meta = pq.ParquetFile(path).metadata
        parts = []
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(0).statistics
            assert stats.min == stats.max
            parts.append(stats.min)
        assert parts == sorted(parts) and len(parts) == 5


def test_selection_keys_are_pinned():
    """Which documents a ClimbMix holds is decided by these keys: they must not change with a refactor (a moved
    module once renamed their salt and changed every partial epoch)."""
    from climb.export.climbmix import select_keys

    assert [int(k) for k in select_keys(["embedded-000:0", "doc-2"], 1234)] == [13997505757760090999,
                                                                                 16008284171486877194]
