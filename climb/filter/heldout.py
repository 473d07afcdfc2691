"""Held-out target documents carved from the corpus itself (``evaluation.heldout.carve``).

A seeded share of the documents whose ``origin`` (the input's ``input.origin_field``, e.g. a topic or a newsgroup)
or ``source`` (the input file) is one of the given values is set aside: each is listed in a filter id list
(``results/filter/heldout/{shard}.parquet``, reason ``heldout``) so that no proxy, target model or ClimbMix part
trains on it, and written with the target topic (``evaluation.heldout.topic``) to ``results/eval/carved.jsonl``, the
held-out file the evaluation tasks are built from. Which documents are taken depends only on their id and the seed,
not on how the corpus is sharded. Like every filter, it acts after ingest: the tokenizer and the clustering see the
carved documents, the training data does not.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from climb.core.io import atomic_open, write_jsonl, write_parquet

log = logging.getLogger("climb.filter.heldout")

COLUMNS = ("origin", "source")


def _share(seed: int, doc_id: str) -> float:
    return int(hashlib.sha256(f"{seed}/heldout/{doc_id}".encode()).hexdigest()[:16], 16) / 2**64


def carve_shard(corpus_path: str, column: str, values: Sequence[str], fraction: float, topic: str, seed: int,
                ids_path: str, docs_path: str) -> int:
    """Set aside ``fraction`` of the shard's documents whose ``column`` is in ``values``; returns how many."""
    if column not in COLUMNS:
        raise ValueError(f"evaluation.heldout.carve.column must be one of {COLUMNS}, got {column!r}")
    table = pq.read_table(corpus_path, columns=["id", "text", column])
    wanted = set(values)
    rows = [(i, t, v) for i, t, v in zip(*(table.column(c).to_pylist() for c in ("id", "text", column)), strict=True)
            if v in wanted and _share(seed, i) < fraction]
    write_parquet(ids_path, pa.table({"id": [i for i, _, _ in rows], "reason": [f"heldout: {v}" for _, _, v in rows]},
                                     schema=pa.schema([("id", pa.string()), ("reason", pa.string())])))
    write_jsonl(docs_path, ({"id": i, "text": t, "topic": topic, "origin": v} for i, t, v in rows))
    log.info("%s: %d of %d documents held out (%s in %s, fraction %s)", corpus_path, len(rows), table.num_rows,
             column, sorted(wanted), fraction)
    return len(rows)


def collect_carved(paths: Sequence[str], out_path: str) -> int:
    """The per-shard carved documents as one held-out JSONL (shard order); stops when none were carved."""
    n = 0
    with atomic_open(out_path, "w", encoding="utf-8") as out:
        for path in paths:
            for line in Path(path).read_text(encoding="utf-8").splitlines():
                out.write(line + "\n")
                n += 1
    if n == 0:
        raise ValueError(f"evaluation.heldout.carve took no document: no corpus document has one of the values "
                         f"given in {', '.join(paths[:3])}... check carve.column, carve.values and input.origin_field")
    log.info("%d held-out documents in %s", n, out_path)
    return n
