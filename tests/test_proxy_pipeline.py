"""Tokenize / train_proxy / evaluate_proxy rules on the test pipeline's workdir (embedded default corpus)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from climb.config import load_schema
from climb.io import write_json
from climb.tokenize import open_shard
from climb.tokenizer import load_tokenizer
from tests.conftest import CI_CONFIG, snakemake


def _tokens_by_origin(workdir: Path) -> pd.DataFrame:
    """Per document: super-cluster (-1 pruned), origin and tokens."""
    sc = json.loads((workdir / "results/clusters/superclusters.json").read_text())["cluster_to_supercluster"]
    frames = []
    for idx in sorted((workdir / "results/tokens").glob("*.idx.parquet")):
        shard = idx.name.removesuffix(".idx.parquet")
        index = pq.read_table(idx).to_pandas()
        corpus = pq.read_table(workdir / f"results/corpus/{shard}.parquet", columns=["id", "origin"]).to_pandas()
        frame = index.merge(corpus, on="id", validate="one_to_one")
        frame["super_cluster"] = frame["cluster"].map(lambda c: int(sc.get(str(c), -1)))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_every_document_is_tokenized_once(pipeline):
    tok = load_tokenizer(pipeline / "results/tokenizer")
    config = yaml.safe_load(CI_CONFIG.read_text())
    assert len(tok) == config["tokenizer"]["vocab_size"]
    for corpus in sorted((pipeline / "results/corpus").glob("*.parquet")):
        shard = open_shard(pipeline / f"results/tokens/{corpus.stem}.bin",
                           pipeline / f"results/tokens/{corpus.stem}.idx.parquet")
        table = pq.read_table(corpus, columns=["id", "text"])
        assert shard.index.column("id").to_pylist() == table.column("id").to_pylist()
        last = table.num_rows - 1
        off, n = shard.index.column("offset")[last].as_py(), shard.index.column("length")[last].as_py()
        assert tok.decode(shard.tokens[off : off + n - 1].tolist()) == table.column("text")[last].as_py()


def test_prior_covers_the_kept_superclusters(pipeline):
    prior = json.loads((pipeline / "results/tokens/prior.json").read_text())
    sc = json.loads((pipeline / "results/clusters/superclusters.json").read_text())
    assert set(prior["prior"]) == {str(s["id"]) for s in sc["superclusters"]}
    assert sum(prior["prior"].values()) == pytest.approx(1.0)
    docs = _tokens_by_origin(pipeline)
    kept = docs[docs["super_cluster"] >= 0]
    assert prior["total_tokens"] + prior["excluded"]["filtered_tokens"] == kept["length"].sum()
    assert sum(prior["tokens"].values()) == prior["total_tokens"]
    assert prior["excluded"]["pruned_tokens"] == docs.loc[docs["super_cluster"] < 0, "length"].sum()


@pytest.mark.slow
def test_topic_proxy_beats_off_topic_proxy_within_a_minute(pipeline_copy, tmp_path):
    """Two proxies with the embedded default's proxy and evaluation settings, all weight on one super-cluster
    each: the one richest in the target topic scores better on that topic's held-out text, and each proxy
    trains and scores in well under a minute (the rules' benchmark files)."""
    schema = load_schema()["properties"]
    defaults = {"proxy": {k: v["default"] for k, v in schema["proxy"]["properties"].items()},
                "evaluation": {k: v["default"] for k, v in schema["evaluation"]["properties"].items()}}
    defaults["evaluation"]["heldout"] = {k: v["default"]
                                         for k, v in schema["evaluation"]["properties"]["heldout"]["properties"].items()}
    overrides = tmp_path / "defaults.yaml"
    overrides.write_text(yaml.safe_dump(defaults))
    topic = defaults["evaluation"]["heldout"]["topic"]

    docs = _tokens_by_origin(pipeline_copy)
    docs = docs[docs["super_cluster"] >= 0]
    totals = docs.groupby("super_cluster")["length"].sum()
    share = (docs[docs["origin"] == f"natural/{topic}"].groupby("super_cluster")["length"].sum()
             .reindex(totals.index, fill_value=0) / totals)
    big = totals[totals >= totals.max() / 10].index
    on, off = int(share[big].idxmax()), int(share[big].idxmin())
    assert share[on] > 0.3 and share[off] < 0.05, share

    mixes = {"on": (on, "results/search/test/round1/mix0"), "off": (off, "results/search/test/round1/mix1")}
    for sc, mixdir in mixes.values():
        write_json(pipeline_copy / mixdir / "weights.json", {"weights": {str(s): float(s == sc) for s in totals.index}})
    snakemake(pipeline_copy, *(f"{m}/scores/general.json" for _, m in mixes.values()), "--cores", "2",
              "--configfile", str(CI_CONFIG), str(overrides), configfile=None)  # test/round1: no search rule writes it

    scores = {k: json.loads((pipeline_copy / m / "scores/general.json").read_text()) for k, (_, m) in mixes.items()}
    bpb = {k: s["metrics"]["climb_heldout_bpb/bits_per_byte"] for k, s in scores.items()}
    assert bpb["on"] < bpb["off"], scores
    assert scores["on"]["objective"] > scores["off"]["objective"], scores
    for _, mixdir in mixes.values():
        training = json.loads((pipeline_copy / mixdir / "training.json").read_text())
        per_step = defaults["proxy"]["batch_size"] * defaults["proxy"]["seq_len"]
        assert training["tokens"] == defaults["proxy"]["tokens"] // per_step * per_step
        bench = [_benchmark(pipeline_copy / f"results/benchmarks/search/{mixdir.removeprefix('results/search/')}/{name}.tsv")
                 for name in ("train_proxy", "evaluate_general")]
        cpu, wall = sum(float(b["cpu_time"]) for b in bench), sum(float(b["s"]) for b in bench)
        print(mixdir, f"train+score: {cpu:.1f} s CPU, {wall:.1f} s wall", training["tokens_per_second"], "tokens/s", bpb)
        # One thread per proxy (proxy.threads: 1): CPU time is the wall time of an otherwise idle core, which
        # a shared test machine cannot promise.
        assert cpu < 45
    assert np.isfinite(list(bpb.values())).all()


def _benchmark(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return next(csv.DictReader(fh, delimiter="\t"))
