"""Document-level quality filtering beside cluster pruning (``prune.document_thresholds``), and each cluster's score
distribution against the thresholds.

Cluster pruning drops a cluster whose *mean* score is low; low-quality pages spread thinly across topic clusters (web
spam at a few percent of every cluster) never move a mean. A document whose expected score on a criterion is below
that criterion's document threshold is listed in ``results/filter/quality/{shard}.parquet`` (``id``, ``reason``),
like dedup's lists, and no proxy, target model or ClimbMix part trains on it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from climb.core.io import write_parquet

log = logging.getLogger("climb.quality")

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def filter_documents(scores_path: str, thresholds: Mapping[str, float], out_path: str) -> int:
    """List the shard's documents below any criterion's threshold (the first such criterion names the reason)."""
    table = pq.read_table(scores_path)
    missing = sorted(set(thresholds) - set(table.column_names))
    if missing:
        raise ValueError(f"prune.document_thresholds names {missing}, which {scores_path} has no scores for "
                         f"(criteria: {[c for c in table.column_names if c != 'id']})")
    ids = table.column("id").to_pylist()
    reasons: list[str | None] = [None] * len(ids)
    for criterion, threshold in thresholds.items():
        values = table.column(criterion).to_numpy()
        for i in np.flatnonzero(values < threshold):
            if reasons[i] is None:
                reasons[i] = f"quality: {criterion} {values[i]:.2f} < {threshold:g}"
    rows = [(doc, why) for doc, why in zip(ids, reasons, strict=True) if why is not None]
    write_parquet(out_path, pa.table({"id": [d for d, _ in rows], "reason": [w for _, w in rows]},
                                     schema=pa.schema([("id", pa.string()), ("reason", pa.string())])))
    log.info("%s: %d of %d documents below a document threshold %s", scores_path, len(rows), len(ids), dict(thresholds))
    return len(rows)


def cluster_score_distribution(assign_paths: Sequence[str], score_paths: Sequence[str], criteria: Sequence[str],
                               thresholds: Mapping[str, float], rows_per_shard: int) -> pd.DataFrame:
    """Per cluster and criterion: documents seen, quantiles of the score, and the share below the document
    threshold. Reads at most ``rows_per_shard`` documents of each shard (its first rows), so a report of a large
    corpus stays cheap."""
    parts = []
    for assign_path, score_path in zip(assign_paths, score_paths, strict=True):
        assign = pq.read_table(assign_path, columns=["id", "cluster"]).slice(0, rows_per_shard).to_pandas()
        scores = pq.read_table(score_path, columns=["id", *criteria]).slice(0, rows_per_shard).to_pandas()
        parts.append(assign.merge(scores, on="id", how="inner", validate="one_to_one"))
    data = pd.concat(parts, ignore_index=True)
    out = []
    for cluster, group in data.groupby("cluster", sort=True):
        for criterion in criteria:
            values = group[criterion].to_numpy(float)
            threshold = thresholds.get(criterion)
            row = {"cluster": int(cluster), "criterion": criterion, "documents": len(values),
                   "mean": float(values.mean()),
                   **{f"p{int(q * 100)}": float(np.quantile(values, q)) for q in QUANTILES},
                   "below_document_threshold": float((values < threshold).mean()) if threshold is not None else None}
            out.append(row)
    return pd.DataFrame(out)
