"""Tokenizer training and packed tokenization (climb.tokens.tokenizer, climb.tokens.packed) on small synthetic corpora.

``make_world`` is also used by the proxy and evaluation tests: it writes a corpus, k-means assignments,
super-clusters, a trained tokenizer and the packed token shards into a folder, as the pipeline would.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from climb.core.io import write_json, write_parquet
from climb.tokens.packed import TokenizeError, open_shard, token_prior, tokenize_shard
from climb.tokens.tokenizer import build_tokenizer, load_tokenizer

TOKENIZER_SETTINGS = {"path": None, "vocab_size": 400, "min_frequency": 2, "sample_docs": 1000,
                      "max_chars_per_doc": 2000}

_VOCABULARIES = (
    "the ocean wave tide salt fish boat harbor sailor coral reef deep blue current shore",
    "the compiler kernel thread memory pointer stack buffer cache syscall process binary loader",
    "the garden tomato soil seed root water sun leaf flower bloom harvest compost weed",
)
WORDS = {cluster: words.split(" ") for cluster, words in enumerate(_VOCABULARIES)}


def synthetic_docs(n_per_cluster: int, seed: int = 0) -> list[tuple[str, int]]:
    """Documents of three word-distinct 'topics', one per cluster, interleaved."""
    rng = random.Random(seed)
    docs = []
    for i in range(n_per_cluster):
        for cluster, words in WORDS.items():
            sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 12))) + "." for _ in range(rng.randint(2, 6))]
            docs.append((f"Doc {i}. " + " ".join(sentences), cluster))
    return docs


def make_world(root: Path, docs: list[tuple[str, int]], superclusters: dict[int, list[int]], n_shards: int = 2,
               tokenizer_settings: dict | None = None, seed: int = 0) -> SimpleNamespace:
    """Corpus, assignments, super-clusters, tokenizer and token shards for ``docs`` [(text, cluster)]."""
    root.mkdir(parents=True, exist_ok=True)
    shards = [f"s{k}" for k in range(n_shards)]
    corpus_paths, assign_paths = [], []
    for k, shard in enumerate(shards):
        rows = [(f"{shard}-{i}", t, c) for i, (t, c) in enumerate(docs) if i % n_shards == k]
        corpus = pa.table({"id": [r[0] for r in rows], "text": [r[1] for r in rows],
                           "n_chars": pa.array([len(r[1]) for r in rows], pa.int64()), "source": [shard] * len(rows)})
        assign = pa.table({"id": [r[0] for r in rows], "cluster": pa.array([r[2] for r in rows], pa.int32()),
                           "distance": pa.array([0.1] * len(rows), pa.float32())})
        corpus_paths.append(str(root / "corpus" / f"{shard}.parquet"))
        assign_paths.append(str(root / "assign" / f"{shard}.parquet"))
        write_parquet(corpus_paths[-1], corpus)
        write_parquet(assign_paths[-1], assign)
    sc_path = str(root / "superclusters.json")
    write_json(sc_path, {
        "n_superclusters": len(superclusters),
        "superclusters": [{"id": s, "name": f"sc{s:02d}", "clusters": cs, "n_docs": 0, "n_chars": 0}
                          for s, cs in sorted(superclusters.items())],
        "cluster_to_supercluster": {str(c): s for s, cs in superclusters.items() for c in cs},
    })
    tok_dir = str(root / "tokenizer")
    build_tokenizer(corpus_paths, tok_dir, tokenizer_settings or TOKENIZER_SETTINGS, seed)
    bins = [str(root / "tokens" / f"{s}.bin") for s in shards]
    idxs = [str(root / "tokens" / f"{s}.idx.parquet") for s in shards]
    for c, a, b, i in zip(corpus_paths, assign_paths, bins, idxs, strict=True):
        tokenize_shard(c, a, tok_dir, b, i, batch_rows=7)
    return SimpleNamespace(root=root, shards=shards, corpus=corpus_paths, assign=assign_paths, superclusters=sc_path,
                           tokenizer=tok_dir, bins=bins, idxs=idxs)


def digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> SimpleNamespace:
    return make_world(tmp_path_factory.mktemp("world"), synthetic_docs(20), {0: [0], 1: [1, 2]})


def test_tokenizer_loads_with_autotokenizer_and_round_trips(world):
    tok = load_tokenizer(world.tokenizer)
    assert len(tok) == TOKENIZER_SETTINGS["vocab_size"]
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token_id == tok.eos_token_id
    text = "The ocean wave — naïve café 😀 binary loader"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text  # byte-level: nothing is unknown


def test_tokenizer_is_deterministic(world, tmp_path):
    build_tokenizer(world.corpus, str(tmp_path / "again"), TOKENIZER_SETTINGS, 0)
    assert digest(tmp_path / "again" / "tokenizer.json") == digest(Path(world.tokenizer) / "tokenizer.json")


def test_tokenizer_from_path_is_copied(world, tmp_path):
    build_tokenizer([], str(tmp_path / "copy"), {**TOKENIZER_SETTINGS, "path": world.tokenizer}, 0)
    assert load_tokenizer(tmp_path / "copy").get_vocab() == load_tokenizer(world.tokenizer).get_vocab()


def test_packed_tokens_match_documents(world):
    tok = load_tokenizer(world.tokenizer)
    for corpus, assign, b, i in zip(world.corpus, world.assign, world.bins, world.idxs, strict=True):
        shard = open_shard(b, i)
        assert shard.tokens.dtype == np.uint16
        texts = pq.read_table(corpus).column("text").to_pylist()
        index = shard.index.to_pydict()
        assert index["id"] == pq.read_table(corpus).column("id").to_pylist()
        assert index["cluster"] == pq.read_table(assign).column("cluster").to_pylist()
        assert index["offset"][0] == 0
        assert all(o + n == nxt for o, n, nxt in zip(index["offset"], index["length"], index["offset"][1:], strict=False))
        for text, off, n in zip(texts, index["offset"], index["length"], strict=True):
            ids = shard.tokens[off : off + n].tolist()
            assert ids[-1] == tok.eos_token_id
            assert tok.decode(ids[:-1]) == text


def test_tokenize_is_deterministic(world, tmp_path):
    tokenize_shard(world.corpus[0], world.assign[0], world.tokenizer, str(tmp_path / "a.bin"), str(tmp_path / "a.idx.parquet"))
    assert digest(tmp_path / "a.bin") == digest(world.bins[0])
    assert digest(tmp_path / "a.idx.parquet") == digest(world.idxs[0])


def test_tokenize_rejects_misaligned_assignments(world, tmp_path):
    table = pq.read_table(world.assign[0])
    ids = table.column("id").to_pylist()
    ids[3], ids[4] = ids[4], ids[3]
    bad = tmp_path / "assign.parquet"
    write_parquet(bad, table.set_column(0, "id", pa.array(ids)))
    with pytest.raises(TokenizeError, match="row 3"):
        tokenize_shard(world.corpus[0], str(bad), world.tokenizer, str(tmp_path / "x.bin"), str(tmp_path / "x.idx.parquet"))
    assert not (tmp_path / "x.bin").exists() and not (tmp_path / "x.idx.parquet").exists()


def test_open_shard_detects_truncated_token_file(world, tmp_path):
    short = tmp_path / "short.bin"
    short.write_bytes(Path(world.bins[0]).read_bytes()[:-2])
    with pytest.raises(TokenizeError, match="bytes"):
        open_shard(short, world.idxs[0])


def test_prior_counts_kept_unfiltered_tokens(world, tmp_path):
    filtered = tmp_path / "filter.parquet"
    write_parquet(filtered, pa.table({"id": ["s0-0", "s1-1"], "reason": ["dup", "dup"]}))  # clusters 0 and 1
    # Super-cluster 1 holds only cluster 1 here: cluster 2 is pruned.
    sc = json.loads(Path(world.superclusters).read_text())
    sc["superclusters"][1]["clusters"] = [1]
    sc["cluster_to_supercluster"] = {"0": 0, "1": 1}
    pruned = tmp_path / "sc.json"
    write_json(pruned, sc)
    prior = token_prior(world.idxs, str(pruned), [str(filtered)], str(tmp_path / "prior.json"))

    index = pa.concat_tables([pq.read_table(i) for i in world.idxs]).to_pandas()
    usable = index[~index["id"].isin(["s0-0", "s1-1"])]
    for s, cluster in ((0, 0), (1, 1)):
        assert prior["tokens"][str(s)] == usable.loc[usable["cluster"] == cluster, "length"].sum()
        assert prior["docs"][str(s)] == (usable["cluster"] == cluster).sum()
    assert prior["excluded"]["pruned_docs"] == (index["cluster"] == 2).sum()
    assert prior["excluded"]["filtered_docs"] == 2
    assert sum(prior["prior"].values()) == pytest.approx(1.0)
    assert json.loads((tmp_path / "prior.json").read_text()) == prior
