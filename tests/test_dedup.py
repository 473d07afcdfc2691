"""Semantic dedup inside k-means clusters: near-copies go, distinct posts of one thread stay."""

from __future__ import annotations

import collections
import json
import random
import re
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from climb.core.io import save_npy, write_parquet
from climb.filter.dedup import DedupError, cluster_group, dedup_group, semdedup
from tests.conftest import shared_data

THRESHOLD = 0.95


def test_semdedup_keeps_first_and_names_a_kept_document():
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([np.cos(0.25), np.sin(0.25), 0.0])  # cos(a, b) = 0.969
    c = np.array([np.cos(0.5), np.sin(0.5), 0.0])  # cos(a, c) = 0.878, cos(b, c) = 0.969
    d = np.array([0.0, 0.0, 1.0])
    rep, cos = semdedup(np.stack([a, b, c, d, a]), THRESHOLD)
    # b duplicates a; c is similar only to b, which is removed, so c stays; the second a duplicates a
    assert rep.tolist() == [-1, 0, -1, -1, 0]
    assert cos[1] == pytest.approx(np.cos(0.25), abs=1e-6) and cos[4] == pytest.approx(1.0, abs=1e-6)


def test_semdedup_blocks_do_not_change_the_result():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(60, 16))
    x = np.concatenate([base, base[rng.integers(0, 60, 140)] + rng.normal(scale=0.08, size=(140, 16))])
    x = x[rng.permutation(len(x))]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    whole = semdedup(x, 0.98, block=10_000)
    for block in (1, 7, 64):
        rep, cos = semdedup(x, 0.98, block=block)
        assert np.array_equal(rep, whole[0])
        assert np.allclose(cos, whole[1], atol=1e-6)
    removed = whole[0] >= 0
    assert 20 < removed.sum() < 180
    kept = np.flatnonzero(~removed)
    sims = x[kept] @ x[kept].T
    assert (sims[np.triu_indices(len(kept), 1)] <= 0.98).all(), "no two kept rows above the threshold"
    assert (x[removed] @ x[kept].T).max(axis=1).min() > 0.98, "every removed row has a kept row above it"


def test_shape_mismatch_is_named(tmp_path):
    write_parquet(tmp_path / "a.parquet", pa.table({"id": ["x", "y"], "cluster": pa.array([0, 1], pa.int32()),
                                                    "distance": pa.array([0.1, 0.2], pa.float32())}))
    save_npy(tmp_path / "e.npy", np.zeros((3, 4), np.float16))
    with pytest.raises(DedupError, match="e.npy"):
        dedup_group([tmp_path / "a.parquet"], [tmp_path / "e.npy"], 0, 1, 0.9, tmp_path / "o.parquet",
                    tmp_path / "c.json")


def _subject(text: str) -> str | None:
    m = re.search(r"^Subject:\s*(?:Re:\s*)*(.*)$", text, re.M | re.I)
    return m.group(1).strip().lower() if m else None


def _body(text: str) -> str:
    return text.split("\n\n", 1)[-1]


def _quotes(text: str) -> bool:
    return bool(re.search(r"^\s*[>|:]", _body(text), re.M)) or "writes:" in text or "wrote:" in text


def _jaccard(a: str, b: str, k: int = 5) -> float:
    def shingles(t):
        w = re.findall(r"\w+", t.lower())
        return {tuple(w[i : i + k]) for i in range(len(w) - k + 1)}

    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / max(1, len(sa | sb))


def _shared_ngrams(a: str, b: str, n: int = 10) -> int:
    def grams(t):
        w = re.findall(r"\w+", t.lower())
        return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}

    return len(grams(a) & grams(b))


def _resign(text: str) -> str:
    lines = text.rstrip("\n").split("\n")
    return "\n".join(lines[:-2] + ["-- ", "Jane Q. Poster, jane@example.org | Opinions are my own."]) + "\n"


def _rewrap(text: str) -> str:
    head, _, body = text.partition("\n\n")
    return head + "\n\n" + "\n\n".join(textwrap.fill(" ".join(p.split()), width=52) for p in body.split("\n\n")) + "\n"


@pytest.mark.slow
def test_20newsgroups_near_copies_removed_thread_posts_kept(tmp_path):
    from climb.cluster.embeddings import embed_shard
    from climb.cluster.kmeans import assign_shard, fit_kmeans

    rows = [json.loads(line) for line in shared_data("20newsgroups", "20news_bydate.jsonl").read_text().splitlines()]
    threads = collections.defaultdict(list)
    for r in rows:
        threads[_subject(r["text"])].append(r)
    rng = random.Random(3)
    chosen = [v for s, v in sorted(threads.items(), key=lambda kv: str(kv[0])) if s and 3 <= len(v) <= 8]
    rng.shuffle(chosen)
    sample = [r for thread in chosen[:70] for r in thread]
    docs = {r["doc_id"]: r["text"] for r in sample}

    candidates = [i for i, t in docs.items() if 800 <= len(_body(t)) <= 3000]
    originals = rng.sample(candidates, 24)
    planted = {}
    for k, doc_id in enumerate(originals):
        planted[f"{doc_id}#copy"] = doc_id
        docs[f"{doc_id}#copy"] = _resign(docs[doc_id]) if k % 2 else _rewrap(docs[doc_id])

    ids = sorted(docs)
    rng.shuffle(ids)
    half = len(ids) // 2
    assign, embed = [], []
    for s, part in enumerate((ids[:half], ids[half:])):
        corpus = tmp_path / f"corpus/s{s}.parquet"
        write_parquet(corpus, pa.table({"id": part, "text": [docs[i] for i in part]}))
        embed.append(tmp_path / f"embed/s{s}.npy")
        embed_shard(corpus, embed[-1], device="cpu", max_seq_length=256, batch_size=32)
    fit_kmeans([str(p) for p in embed], str(tmp_path / "centroids.npy"), str(tmp_path / "fit.json"), k=8,
               sample_size=10_000, seed=0, gpu="no")
    for s in range(2):
        assign.append(tmp_path / f"assign/s{s}.parquet")
        assign_shard(str(tmp_path / f"corpus/s{s}.parquet"), str(embed[s]), str(tmp_path / "centroids.npy"),
                     str(assign[-1]))

    n_groups = 3
    removed, sizes = {}, {}
    for g in range(n_groups):
        out, counts = tmp_path / f"dedup/{g}.parquet", tmp_path / f"dedup/counts/{g}.json"
        dedup_group(assign, embed, g, n_groups, THRESHOLD, out, counts)
        table = pq.read_table(out).to_pylist()
        info = json.loads(counts.read_text())
        assert info["removed"] == len(table) == sum(c["removed"] for c in info["clusters"])
        assert all(cluster_group(c["cluster"], n_groups) == g for c in info["clusters"])
        sizes.update({c["cluster"]: c["size"] for c in info["clusters"]})
        removed.update({r["id"]: r for r in table})
    assert sum(sizes.values()) == len(docs), "every document is in exactly one group's clusters"

    for copy, original in planted.items():
        gone = [x for x in (copy, original) if x in removed]
        assert gone, f"{original} and its planted copy are both kept"
        if len(gone) == 1:
            other = original if gone[0] == copy else copy
            assert removed[gone[0]]["duplicate_of"] == other
            assert removed[gone[0]]["reason"].startswith(f"near-duplicate of {other} (cos ")
        else:  # the original has a real repost in the sample: both go, in favour of that same document
            assert removed[copy]["duplicate_of"] == removed[original]["duplicate_of"] not in planted

    # every removal shares real text with the kept document (a repost, a copy, or the same quoted passage),
    # and the kept document is not itself removed
    for doc_id, row in removed.items():
        assert row["duplicate_of"] not in removed
        assert row["cosine"] > THRESHOLD
        assert _shared_ngrams(_body(docs[doc_id]), _body(docs[row["duplicate_of"]])) >= 10, (doc_id, row)

    # distinct posts of one thread (same Subject, neither quoting, bodies sharing little) are all kept
    subjects = {i: _subject(t) for i, t in docs.items() if "#copy" not in i}
    distinct = [(a, b) for a in subjects for b in subjects if a < b and subjects[a] == subjects[b]
                and not _quotes(docs[a]) and not _quotes(docs[b]) and _jaccard(_body(docs[a]), _body(docs[b])) < 0.3]
    assert len(distinct) >= 20
    assert not {x for pair in distinct for x in pair} & set(removed)
    print(f"{len(docs)} documents, {len(planted)} planted copies, {len(removed)} removed, "
          f"{len(distinct)} distinct same-thread pairs all kept")

    # same inputs, same bytes
    dedup_group(assign, embed, 0, n_groups, THRESHOLD, tmp_path / "again.parquet", tmp_path / "again.json")
    assert (tmp_path / "again.parquet").read_bytes() == (tmp_path / "dedup/0.parquet").read_bytes()


def test_gpu_and_cpu_agree():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rng = np.random.default_rng(1)
    base = rng.normal(size=(3000, 384))
    x = np.concatenate([base, base[rng.integers(0, 3000, 3000)] + rng.normal(scale=0.1, size=(3000, 384))])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    cpu = semdedup(x, 0.95, block=512)
    gpu = semdedup(x, 0.95, block=512, device="cuda")
    assert (cpu[0] >= 0).sum() > 1000
    assert np.array_equal(cpu[0], gpu[0])
    assert np.allclose(cpu[1], gpu[1], atol=1e-5)


def test_semdedup_compacts_kept_rows_in_place_without_touching_the_callers_vectors():
    """Kept rows are compacted to the front of the working array (no second copy of the kept vectors); the caller's
    array is left as it was unless it is given up (overwrite=True), and both give the same answer for any block,
    including blocks whose last rows are kept after removed ones."""
    from climb.bench.items import dedup_vectors

    x = dedup_vectors(3000, 16, 700, seed=3)
    before = x.copy()
    ref_rep, ref_cos = semdedup(x, 0.95, block=5000)
    assert np.array_equal(x, before)
    assert 600 <= (ref_rep < 0).sum() <= 700 and (ref_rep >= 0).sum() > 2000
    for block in (1, 7, 64, 999):
        rep, cos = semdedup(x, 0.95, block=block)
        assert np.array_equal(rep, ref_rep), block
        np.testing.assert_allclose(cos, ref_cos, atol=1e-6)
        assert np.array_equal(x, before)
    given = x.copy()
    rep, _ = semdedup(given, 0.95, block=64, overwrite=True)
    assert np.array_equal(rep, ref_rep)
    kept = np.flatnonzero(rep < 0)
    assert np.array_equal(given[: len(kept)], x[kept])  # the kept vectors, compacted in order
    # a removed row names a kept row with that similarity
    gone = np.flatnonzero(rep >= 0)
    assert (rep[gone] < gone).all() and (rep[rep[gone]] < 0).all()
    np.testing.assert_allclose(ref_cos[gone], np.einsum("ij,ij->i", x[gone], x[rep[gone]]), atol=1e-5)
