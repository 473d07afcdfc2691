"""Teacher annotation of a seeded sample of the corpus (CLIMB stage 3, first half).

The sample is drawn uniformly over all documents of all shards (row counts come from the Parquet
metadata, so drawing it reads no text), then the configured teacher scores each sampled document on
every criterion. ``annotations.parquet`` holds ``id``, ``shard``, ``text``, one int8 column per
criterion (0-5) and ``teacher``, in shard order then row order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from climb.core.io import write_parquet
from climb.quality.criteria import check_criteria
from climb.quality.heuristic import HeuristicTeacher
from climb.quality.openai_teacher import OpenAISettings, OpenAITeacher

log = logging.getLogger("climb.quality.annotate")


def make_teacher(teacher: Mapping[str, Any], criteria: Sequence[str], cache_path: str | os.PathLike | None = None):
    """The configured teacher (``quality.teacher``): ``heuristic`` or ``openai``."""
    kind = teacher["kind"]
    if kind == "heuristic":
        return HeuristicTeacher(criteria)
    if kind == "openai":
        settings = OpenAISettings.from_config(teacher["openai"], rubrics=teacher.get("rubrics") or {})
        return OpenAITeacher(settings, criteria, cache_path=cache_path)
    raise ValueError(f"quality.teacher.kind: unknown teacher {kind!r} (heuristic or openai)")


def sample_rows(corpus_paths: Sequence[str | os.PathLike], sample_size: int, seed: int) -> list[np.ndarray]:
    """Per shard, the sorted row numbers of a seeded uniform sample of ``sample_size`` documents overall."""
    counts = [pq.ParquetFile(p).metadata.num_rows for p in corpus_paths]
    total = int(sum(counts))
    n = min(sample_size, total)
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False)) if n else np.zeros(0, int)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return [chosen[(chosen >= lo) & (chosen < hi)] - lo for lo, hi in zip(offsets[:-1], offsets[1:], strict=True)]


def annotate(corpus_paths: Sequence[str], output: str, criteria: Sequence[str], teacher: Mapping[str, Any],
             sample_size: int, seed: int, cache_path: str | None = None) -> dict[str, Any]:
    """Snakemake entry: sample, ask the teacher, write ``annotations.parquet``; returns a small report."""
    criteria = check_criteria(criteria)
    scorer = make_teacher(teacher, criteria, cache_path)
    ids: list[str] = []
    shards: list[str] = []
    texts: list[str] = []
    for path, rows in zip(corpus_paths, sample_rows(corpus_paths, sample_size, seed), strict=True):
        if not len(rows):
            continue
        table = pq.read_table(path, columns=["id", "text"]).take(pa.array(rows))
        ids.extend(table.column("id").to_pylist())
        texts.extend(table.column("text").to_pylist())
        shards.extend([Path(path).name.removesuffix(".parquet")] * len(rows))
    log.info("annotating %d sampled documents of %d shards with the %s teacher", len(ids), len(corpus_paths),
             scorer.name)
    scores = scorer.annotate(ids, texts)
    keep = [i for i, s in enumerate(scores) if s is not None]
    if len(keep) < len(ids):
        log.warning("%d documents had no valid answer and are left out", len(ids) - len(keep))
    columns: dict[str, Any] = {
        "id": pa.array([ids[i] for i in keep], pa.string()),
        "shard": pa.array([shards[i] for i in keep], pa.string()),
        "text": pa.array([texts[i] for i in keep], pa.string()),
    }
    for c in criteria:
        columns[c] = pa.array(np.array([scores[i][c] for i in keep], dtype=np.int8))
    columns["teacher"] = pa.array([scorer.name] * len(keep), pa.string())
    write_parquet(output, pa.table(columns))
    report = {"sampled": len(ids), "annotated": len(keep), "teacher": scorer.name, **scorer.counts}
    for c in criteria:
        values = np.array([scores[i][c] for i in keep])
        log.info("%s: mean %.2f, label counts %s", c, values.mean() if len(values) else float("nan"),
                 np.bincount(values, minlength=6).tolist() if len(values) else [])
    log.info("annotation report: %s", report)
    return report
