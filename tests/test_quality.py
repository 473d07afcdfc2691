"""Quality stage units: the heuristic teacher, sampling and annotation, fastText training/import and scoring."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from climb.core.io import write_parquet
from climb.corpus.embedded_corpus import planted_documents
from climb.quality.annotate import annotate, sample_rows
from climb.quality.classifier import (
    ClassifierError,
    build_classifiers,
    expected_scores,
    load,
    preprocess,
    train_one,
)
from climb.quality.criteria import CriteriaError
from climb.quality.heuristic import HeuristicTeacher, features
from climb.quality.score import score_shard

CRITERIA = ["writing_quality", "advertisement", "informational_value", "educational_value"]
SETTINGS = {"source": "train", "pretrained": {}, "lowercase": True, "newline_token": "__newline__",
            "split_punctuation": True, "heldout_fraction": 0.2, "epoch": 10, "lr": 0.5, "dim": 16,
            "word_ngrams": 2, "min_count": 1, "bucket": 20000}

PROSE = [
    "The median is the middle value of a sorted sample. When the number of observations is even, it is defined "
    "as the mean of the two middle values, which makes it robust to outliers. For example, the median of 1, 3 "
    "and 100 is 3, whereas the mean is far larger because a single extreme value pulls it upwards. This is why "
    "robust statistics prefer the median when the data may contain errors.",
    "A regular expression describes a set of strings. The module compiles a pattern into an object whose methods "
    "search a text for matches, split it at them or replace them. Because compiling is relatively expensive, a "
    "pattern that is used many times should be compiled once and reused; the cache of recently used patterns "
    "only helps for a small number of them.",
    "Opening a file returns a stream object. In text mode the bytes read from the disk are decoded with the "
    "encoding given by the caller, or with the locale's preferred encoding when none is given, so the same file "
    "can read differently on two machines. Passing the encoding explicitly is therefore the safer choice for any "
    "program that exchanges files with others.",
]


def test_heuristic_scores_prose_high_and_each_planted_kind_low():
    teacher = HeuristicTeacher(CRITERIA)
    for text in PROSE:
        s = teacher.score(text)
        assert s["writing_quality"] >= 4 and s["advertisement"] == 5, s
        assert s["informational_value"] >= 2 and s["educational_value"] >= 2, s
    # each planted kind fails the criterion an LLM teacher would fail it on
    failing = {"coupon_ads": "advertisement", "keyword_spam": "advertisement",
               "repeated_sentences": "informational_value", "special_char_noise": "writing_quality",
               "page_not_found": "informational_value", "non_human_strings": "writing_quality"}
    for kind, criterion in failing.items():
        docs = planted_documents(kind, 20, random.Random(kind))
        scores = [teacher.score(t)[criterion] for t in docs]
        threshold = 2 if criterion == "advertisement" else 1
        assert np.mean(scores) < threshold, (kind, scores)


def test_heuristic_sees_word_order():
    teacher = HeuristicTeacher(CRITERIA)
    rng = random.Random(0)
    for text in PROSE:
        words = text.split()
        rng.shuffle(words)
        shuffled = teacher.score(" ".join(words))
        assert shuffled["writing_quality"] <= 1 and shuffled["informational_value"] == 0, shuffled
    f = features(PROSE[0])
    assert f.article_misfit < 0.1 and f.capital_starts == 1.0 and 0.3 < f.stop < 0.6


def test_heuristic_is_deterministic_and_rejects_unknown_criteria():
    teacher = HeuristicTeacher(CRITERIA)
    assert teacher.annotate(["a", "b"], PROSE[:2]) == teacher.annotate(["a", "b"], PROSE[:2])
    assert HeuristicTeacher(["advertisement"]).score(PROSE[0]) == {"advertisement": 5}
    with pytest.raises(CriteriaError, match="heuristic teacher scores only"):
        HeuristicTeacher(["humour"])
    with pytest.raises(CriteriaError, match="duplicate"):
        HeuristicTeacher(["advertisement", "advertisement"])


def test_preprocess_matches_the_released_classifiers_convention():
    assert preprocess("Hello, World!\n\nSecond  line.") == "hello , world ! __newline__ second line ."
    assert preprocess("A\nB", newline_token="") == "a b"
    assert preprocess("Don't", split_punctuation=False, lowercase=False) == "Don't"


def _corpus(tmp_path, n_shards=3, per_shard=40, seed=0):
    rng = random.Random(seed)
    paths = []
    k = 0
    for s in range(n_shards):
        rows = []
        for _ in range(per_shard):
            if rng.random() < 0.7:
                words = rng.choice(PROSE).split()
                text = " ".join(words[: rng.randint(30, len(words))])
            else:
                text = rng.choice(planted_documents(rng.choice(["coupon_ads", "keyword_spam", "special_char_noise"]),
                                                    5, random.Random(k)))
            rows.append((f"doc{k:04d}", text))
            k += 1
        path = tmp_path / f"shard{s}.parquet"
        write_parquet(path, pa.table({"id": [r[0] for r in rows], "text": [r[1] for r in rows],
                                      "n_chars": [len(r[1]) for r in rows]}))
        paths.append(str(path))
    return paths


def test_sample_is_seeded_uniform_and_annotations_follow_the_contract(tmp_path):
    paths = _corpus(tmp_path)
    rows = sample_rows(paths, 50, seed=3)
    assert sum(len(r) for r in rows) == 50 and all(np.all(np.diff(r) > 0) for r in rows)
    assert all(len(r) > 0 for r in rows)  # drawn from every shard
    assert [r.tolist() for r in sample_rows(paths, 50, seed=3)] == [r.tolist() for r in rows]
    assert sum(len(r) for r in sample_rows(paths, 10_000, seed=3)) == 120  # capped at the corpus size
    out = tmp_path / "annotations.parquet"
    report = annotate(paths, str(out), CRITERIA, {"kind": "heuristic"}, 50, seed=3)
    table = pq.read_table(out)
    assert table.column_names == ["id", "shard", "text", *CRITERIA, "teacher"]
    assert table.num_rows == 50 == report["annotated"]
    assert set(table.column("teacher").to_pylist()) == {"heuristic"}
    assert table.schema.field("advertisement").type == pa.int8()
    for c in CRITERIA:
        values = table.column(c).to_numpy()
        assert values.min() >= 0 and values.max() <= 5
    first = out.read_bytes()
    annotate(paths, str(out), CRITERIA, {"kind": "heuristic"}, 50, seed=3)
    assert out.read_bytes() == first


def test_train_score_and_metrics(tmp_path):
    paths = _corpus(tmp_path, per_shard=120)
    annotate(paths, str(tmp_path / "ann.parquet"), CRITERIA, {"kind": "heuristic"}, 300, seed=1)
    models = [str(tmp_path / "ft" / f"{c}.bin") for c in CRITERIA]
    report = build_classifiers(models, str(tmp_path / "metrics.json"), CRITERIA, SETTINGS, 5,
                               annotations=str(tmp_path / "ann.parquet"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(report))
    assert metrics["train"] + metrics["heldout"] == 300 and metrics["heldout"] == 60
    for c in CRITERIA:
        m = metrics["criteria"][c]
        assert 0 <= m["heldout_accuracy"] <= 1
        # the classifier learned something: better than always predicting the training mean
        assert m["heldout_mae"] < m["heldout_mae_predict_mean"], (c, m)
    # same annotations and seed: the same model bytes
    first = [Path(p).read_bytes() for p in models]
    build_classifiers(models, str(tmp_path / "metrics.json"), CRITERIA, SETTINGS, 5,
                      annotations=str(tmp_path / "ann.parquet"))
    assert [Path(p).read_bytes() for p in models] == first
    # scoring a shard: id + one float32 expected score per criterion, in corpus order
    out = tmp_path / "scores.parquet"
    n = score_shard(paths[0], dict(zip(CRITERIA, models, strict=True)), str(out), CRITERIA, SETTINGS, batch_rows=7)
    scores = pq.read_table(out)
    corpus = pq.read_table(paths[0])
    assert n == corpus.num_rows == scores.num_rows
    assert scores.column("id").to_pylist() == corpus.column("id").to_pylist()
    assert scores.column_names == ["id", *CRITERIA] and scores.schema.field("writing_quality").type == pa.float32()
    ads = scores.column("advertisement").to_numpy()
    texts = corpus.column("text").to_pylist()
    coupon = [i for i, t in enumerate(texts) if "%" in t and "off" in t.lower()]
    prose = [i for i, t in enumerate(texts) if t.split()[0] in {"The", "A", "Opening"}]
    assert coupon and prose and ads[coupon].mean() + 1.5 < ads[prose].mean()
    assert np.all((ads >= 0) & (ads <= 5))


def test_pretrained_classifiers_by_path(tmp_path):
    # a stand-in for NVIDIA's released classifiers: labels -1..5 on preprocessed text
    src = tmp_path / "nv_advertisement.bin"
    texts = [PROSE[i % 3] if i % 2 == 0 else "Cheap deals, buy now!! Free shipping!" for i in range(60)]
    train_one(texts, [5 if i % 2 == 0 else -1 for i in range(60)], src, SETTINGS, seed=1)
    settings = {**SETTINGS, "source": "pretrained", "pretrained": {"advertisement": str(src)}}
    out = tmp_path / "ft" / "advertisement.bin"
    report = build_classifiers([str(out)], str(tmp_path / "metrics.json"), ["advertisement"], settings, 0)
    assert report["source"] == "pretrained" and report["criteria"]["advertisement"]["labels"] == [-1.0, 5.0]
    assert out.read_bytes() == src.read_bytes() and len(report["criteria"]["advertisement"]["sha256"]) == 64
    s = expected_scores(load(out), ["Cheap deals, buy now!!", PROSE[0]], settings)
    assert s[0] < 2 < s[1] and s.min() >= -1 and s.max() <= 5
    with pytest.raises(ClassifierError, match=r"no model path for criterion/criteria \['writing_quality'\]"):
        build_classifiers([str(out)], str(tmp_path / "m.json"), ["writing_quality"], settings, 0)


def test_non_numeric_labels_are_refused(tmp_path):
    import fasttext

    train = tmp_path / "t.txt"
    train.write_text("__label__hq good text here\n__label__lq bad text\n" * 5)
    path = tmp_path / "m.bin"
    from climb.quality.classifier import _zeroed_allocations

    with _zeroed_allocations():  # fastText with one thread leaves most of its input matrix uninitialised
        fasttext.train_supervised(input=str(train), epoch=1, dim=100, thread=1, verbose=0).save_model(str(path))
    with pytest.raises(ClassifierError, match="label '__label__hq' is not a number"):
        load(path)
    with pytest.raises(ClassifierError, match="no such fastText model"):
        load(tmp_path / "missing.bin")
