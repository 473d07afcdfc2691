"""fastText classifiers, one per criterion: trained on the teacher's labels, or pretrained by path.

Every text goes through one preprocessing before training and prediction: lower-cased, newlines
turned into a token, punctuation split off into tokens of its own, whitespace collapsed — the
preprocessing NVIDIA's released CLIMB classifiers expect (their labels run -1..5). The classifier's
output for a document is its *expected score*: the sum over labels of label value x probability.

Training holds out a seeded fraction of the annotations; the shipped model is the one trained on the
rest, and ``metrics.json`` reports its held-out accuracy (argmax label == teacher label), mean
absolute error of the expected score against the teacher, and the error of always predicting the
training mean (the baseline a useful classifier must beat).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import fasttext
import numpy as np
import pyarrow.parquet as pq

from climb.core.io import atomic_path, sha256_file, write_json

log = logging.getLogger("climb.quality.classifier")

_PUNCT = re.compile(r"([^\w\s])", re.UNICODE)
_NEWLINES = re.compile(r"\s*\n\s*")
_SPACES = re.compile(r"\s+")
LABEL_PREFIX = "__label__"


class ClassifierError(ValueError):
    """Training data or a classifier file is unusable."""


def preprocess(text: str, *, lowercase: bool = True, newline_token: str = "__newline__",
               split_punctuation: bool = True) -> str:
    """One line of fastText input: lower-cased, newlines as a token, punctuation split off."""
    if lowercase:
        text = text.lower()
    if split_punctuation:
        text = _PUNCT.sub(r" \1 ", text)
    text = _NEWLINES.sub(f" {newline_token} " if newline_token else " ", text.strip())
    return _SPACES.sub(" ", text).strip()


def _prep(texts: Sequence[str], settings: Mapping[str, Any]) -> list[str]:
    return [preprocess(t, lowercase=settings.get("lowercase", True),
                       newline_token=settings.get("newline_token", "__newline__"),
                       split_punctuation=settings.get("split_punctuation", True)) for t in texts]


def load(path: str | os.PathLike):
    """Load a supervised fastText model whose labels are numbers (``__label__3``, ``__label__-1``)."""
    if not os.path.exists(path):
        raise ClassifierError(f"{path}: no such fastText model")
    fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence the load-time warning
    model = fasttext.load_model(str(path))
    label_values(model, path)
    return model


def label_values(model, path: str | os.PathLike = "<model>") -> dict[str, float]:
    """{fastText label: numeric value}; an error when a label is not a number."""
    values = {}
    for label in model.get_labels():
        raw = label[len(LABEL_PREFIX):] if label.startswith(LABEL_PREFIX) else label
        try:
            values[label] = float(raw)
        except ValueError:
            raise ClassifierError(f"{path}: label {label!r} is not a number; quality classifiers must have "
                                  "numeric labels such as __label__0 .. __label__5") from None
    return values


def expected_scores(model, texts: Sequence[str], settings: Mapping[str, Any]) -> np.ndarray:
    """Expected score (sum of label value x probability) of each text, float32."""
    if not texts:
        return np.zeros(0, dtype=np.float32)
    values = label_values(model)
    labels, probs = model.predict(_prep(texts, settings), k=-1)
    out = np.empty(len(texts), dtype=np.float64)
    for i, (labs, ps) in enumerate(zip(labels, probs, strict=True)):
        v = np.array([values[lab] for lab in labs])
        p = np.asarray(ps, dtype=np.float64)
        out[i] = float(v @ p / p.sum()) if p.sum() > 0 else float(v.mean())
    return out.astype(np.float32)


@contextlib.contextmanager
def _zeroed_allocations():
    """Make glibc fill fresh heap allocations with zeros while fastText trains.

    fastText's single-threaded initialisation of the input matrix writes only its first tenth
    (``DenseMatrix::uniform`` with thread=1); the rest is whatever the allocator hands out. Fresh
    ``mmap`` pages are zero, but reused heap memory is not, which made training non-deterministic and
    sometimes diverge ("Encountered NaN") on small data. glibc's M_PERTURB fills every allocation with
    the complement of the given byte: 0xFF gives zeros. A no-op where glibc is not the C library.
    """
    libc = None
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not hasattr(libc, "mallopt"):
            libc = None
    m_perturb = -6
    if libc is not None:
        libc.mallopt(m_perturb, 0xFF)
    try:
        yield
    finally:
        if libc is not None:
            libc.mallopt(m_perturb, 0)


def train_one(texts: Sequence[str], labels: Sequence[int], output: str | os.PathLike, settings: Mapping[str, Any],
              seed: int):
    """Train one supervised classifier on (text, integer label) pairs and save it atomically."""
    if len(texts) == 0:
        raise ClassifierError("no training documents")
    with tempfile.TemporaryDirectory(prefix="climb-fasttext-") as tmp:
        train_file = os.path.join(tmp, "train.txt")
        with open(train_file, "w", encoding="utf-8") as fh:
            for text, label in zip(_prep(texts, settings), labels, strict=True):
                fh.write(f"{LABEL_PREFIX}{int(label)} {text}\n")
        lr = float(settings["lr"])
        for attempt in range(4):
            try:
                with _zeroed_allocations():
                    model = fasttext.train_supervised(
                        input=train_file, epoch=settings["epoch"], lr=lr, dim=settings["dim"],
                        wordNgrams=settings["word_ngrams"], minCount=settings["min_count"], loss="softmax",
                        bucket=settings["bucket"], thread=1, seed=seed + attempt, verbose=0,
                    )
                break
            except RuntimeError as exc:  # a real divergence ("Encountered NaN"): lr too high for the data
                if "NaN" not in str(exc) or attempt == 3:
                    raise
                log.warning("fastText diverged at lr=%g (seed %d); retrying with lr=%g", lr, seed + attempt, lr / 2)
                lr /= 2
    with atomic_path(output) as tmp_path:
        model.save_model(str(tmp_path))
    return model


def _split(n: int, heldout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_held = int(round(n * heldout_fraction))
    if heldout_fraction > 0 and n >= 10:
        n_held = max(1, n_held)
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def train_classifiers(annotations: str | os.PathLike, models: Mapping[str, str], metrics: str | os.PathLike,
                      criteria: Sequence[str], settings: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Snakemake entry: one classifier per criterion from ``annotations.parquet``; writes models and metrics."""
    table = pq.read_table(annotations)
    missing = [c for c in criteria if c not in table.column_names]
    if missing:
        raise ClassifierError(f"{annotations}: no label column for criterion/criteria {missing}")
    texts = table.column("text").to_pylist()
    train_idx, held_idx = _split(len(texts), settings["heldout_fraction"], seed)
    if len(train_idx) == 0:
        raise ClassifierError(f"{annotations}: {len(texts)} annotations leave nothing to train on")
    report: dict[str, Any] = {"source": "trained", "annotations": len(texts), "train": int(len(train_idx)),
                              "heldout": int(len(held_idx)), "preprocess": _preprocess_settings(settings),
                              "fasttext": {k: settings[k] for k in ("epoch", "lr", "dim", "word_ngrams", "min_count",
                                                                    "bucket")},
                              "seed": seed, "criteria": {}}
    for j, criterion in enumerate(criteria):
        labels = np.asarray(table.column(criterion).to_numpy(), dtype=np.int64)
        model = train_one([texts[i] for i in train_idx], labels[train_idx], models[criterion], settings, seed + j)
        entry: dict[str, Any] = {
            "model": str(models[criterion]),
            "label_counts": {str(v): int((labels[train_idx] == v).sum()) for v in np.unique(labels)},
        }
        if len(held_idx):
            held_texts = [texts[i] for i in held_idx]
            truth = labels[held_idx].astype(np.float64)
            expected = expected_scores(model, held_texts, settings).astype(np.float64)
            top = np.array([float(lab[0][len(LABEL_PREFIX):]) for lab in model.predict(_prep(held_texts, settings),
                                                                                      k=1)[0]])
            baseline = float(np.abs(truth - labels[train_idx].mean()).mean())
            entry.update({
                "heldout_accuracy": float((top == truth).mean()),
                "heldout_mae": float(np.abs(expected - truth).mean()),
                "heldout_mae_argmax": float(np.abs(top - truth).mean()),
                "heldout_mae_predict_mean": baseline,
                "heldout_pearson": _pearson(expected, truth),
            })
        report["criteria"][criterion] = entry
        log.info("%s: %s", criterion, {k: v for k, v in entry.items() if k != "label_counts"})
    write_json(metrics, report)
    return report


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _preprocess_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {"lowercase": settings.get("lowercase", True), "newline_token": settings.get("newline_token", "__newline__"),
            "split_punctuation": settings.get("split_punctuation", True)}


def import_pretrained(sources: Mapping[str, str], models: Mapping[str, str], metrics: str | os.PathLike,
                      criteria: Sequence[str], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Snakemake entry: copy configured pretrained classifiers into place (checked loadable, numeric labels)."""
    missing = [c for c in criteria if c not in sources]
    if missing:
        raise ClassifierError(f"quality.classifier.pretrained: no model path for criterion/criteria {missing}")
    report: dict[str, Any] = {"source": "pretrained", "preprocess": _preprocess_settings(settings), "criteria": {}}
    for criterion in criteria:
        src = sources[criterion]
        model = load(src)
        values = sorted(label_values(model, src).values())
        with atomic_path(models[criterion]) as tmp:
            shutil.copyfile(src, tmp)
        report["criteria"][criterion] = {"model": str(models[criterion]), "from": str(src), "sha256": sha256_file(src),
                                         "labels": values}
        log.info("%s: %s (labels %s)", criterion, src, values)
    write_json(metrics, report)
    return report


def build_classifiers(models: Sequence[str], metrics: str, criteria: Sequence[str], settings: Mapping[str, Any],
                      seed: int, annotations: str | None = None) -> dict[str, Any]:
    """Snakemake entry: train on the annotations or import the pretrained models, as ``settings.source`` says."""
    paths = dict(zip(criteria, models, strict=True))
    if settings["source"] == "pretrained":
        return import_pretrained(settings["pretrained"], paths, metrics, criteria, settings)
    if annotations is None:
        raise ClassifierError("quality.classifier.source is train but no annotations were given")
    return train_classifiers(annotations, paths, metrics, criteria, settings, seed)
