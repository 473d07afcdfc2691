"""Held-out target documents carved from the corpus (climb.filter.heldout, evaluation.heldout.carve)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from climb.filter.heldout import carve_shard, collect_carved
from tests.conftest import CI_CONFIG, job_counts, snakemake


def corpus(path, ids, origins):
    pq.write_table(pa.table({"id": ids, "text": [f"text of {i}" for i in ids], "n_chars": [10] * len(ids),
                             "source": ["a.jsonl"] * len(ids), "origin": origins}), path)
    return str(path)


def test_a_seeded_share_of_the_matching_documents_whatever_the_sharding(tmp_path):
    ids = [f"d{i}" for i in range(400)]
    origins = ["sci.space" if i % 2 else "rec.autos" for i in range(400)]
    whole = corpus(tmp_path / "whole.parquet", ids, origins)
    n = carve_shard(whole, "origin", ["sci.space"], 0.25, "sci", 7, str(tmp_path / "ids.parquet"),
                    str(tmp_path / "docs.jsonl"))
    assert 30 < n < 70  # a quarter of the 200 matching documents, by a hash of the id
    docs = [json.loads(line) for line in (tmp_path / "docs.jsonl").read_text().splitlines()]
    listed = pq.read_table(tmp_path / "ids.parquet").to_pylist()
    assert [d["id"] for d in docs] == [r["id"] for r in listed] and len(docs) == n
    assert {d["origin"] for d in docs} == {"sci.space"} and {d["topic"] for d in docs} == {"sci"}
    assert {r["reason"] for r in listed} == {"heldout: sci.space"}
    # the same documents when the corpus is split in two shards
    parts = [corpus(tmp_path / f"p{k}.parquet", ids[k::2], origins[k::2]) for k in range(2)]
    carved = set()
    for k, part in enumerate(parts):
        carve_shard(part, "origin", ["sci.space"], 0.25, "sci", 7, str(tmp_path / f"i{k}.parquet"),
                    str(tmp_path / f"d{k}.jsonl"))
        carved |= {json.loads(line)["id"] for line in (tmp_path / f"d{k}.jsonl").read_text().splitlines()}
    assert carved == {d["id"] for d in docs}
    # another seed, other documents
    carve_shard(whole, "origin", ["sci.space"], 0.25, "sci", 8, str(tmp_path / "i8.parquet"), str(tmp_path / "d8.jsonl"))
    assert {json.loads(x)["id"] for x in (tmp_path / "d8.jsonl").read_text().splitlines()} != carved
    assert collect_carved([str(tmp_path / "d0.jsonl"), str(tmp_path / "d1.jsonl")], str(tmp_path / "all.jsonl")) == n


def test_carving_nothing_is_an_error_naming_the_settings(tmp_path):
    path = corpus(tmp_path / "c.parquet", ["a", "b"], ["x", "y"])
    carve_shard(path, "origin", ["sci.space"], 0.5, "sci", 1, str(tmp_path / "i.parquet"), str(tmp_path / "d.jsonl"))
    with pytest.raises(ValueError, match="carve.values"):
        collect_carved([str(tmp_path / "d.jsonl")], str(tmp_path / "all.jsonl"))
    with pytest.raises(ValueError, match="carve.column"):
        carve_shard(path, "topic", ["x"], 0.5, "sci", 1, str(tmp_path / "i.parquet"), str(tmp_path / "d.jsonl"))


def test_the_dag_carves_per_shard_and_filters_the_carved_documents(tmp_path):
    config = yaml.safe_load(CI_CONFIG.read_text())
    config["evaluation"]["heldout"]["carve"] = {"values": ["web"], "fraction": 0.5}
    path = tmp_path / "carve.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path / "w", "-n", "--quiet", "rules", configfile=path)
    counts = job_counts(proc.stdout)
    assert counts["carve_heldout"] == config["input"]["embedded"]["n_shards"] and counts["collect_heldout"] == 1
    config["evaluation"]["heldout"]["path"] = "elsewhere.jsonl"
    path.write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path / "w", "-n", configfile=path, check=False)
    assert proc.returncode != 0 and "both set" in proc.stdout + proc.stderr
