"""Score every document of a shard with the criterion classifiers (CLIMB stage 3, second half).

``scores/{shard}.parquet``: ``id`` and one float32 column per criterion holding the classifier's
expected score, in the corpus shard's row order. Read in batches, so a shard of any size fits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from climb.core.io import atomic_path
from climb.quality.classifier import expected_scores, load

log = logging.getLogger("climb.quality.score")


def score_shard(corpus: str, models: Mapping[str, str], output: str, criteria: Sequence[str],
                settings: Mapping[str, Any], batch_rows: int = 10000) -> int:
    """Snakemake entry: expected score per criterion of every document; returns the number of rows."""
    loaded = {c: load(models[c]) for c in criteria}
    schema = pa.schema([("id", pa.string()), *((c, pa.float32()) for c in criteria)])
    n = 0
    with atomic_path(output) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in pq.ParquetFile(corpus).iter_batches(batch_size=batch_rows, columns=["id", "text"]):
            texts = batch.column("text").to_pylist()
            columns = [batch.column("id").cast(pa.string())]
            columns += [pa.array(expected_scores(loaded[c], texts, settings)) for c in criteria]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            n += len(texts)
    log.info("%s: scored %d documents on %s", corpus, n, list(criteria))
    return n
