"""Accounting of the post-ingest filters (dedup, decontamination): input rows = kept + filtered + rejected."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow.parquet as pq

from climb.core.io import write_json

log = logging.getLogger("climb.filter.accounting")


class FilterError(ValueError):
    """A filter list or the corpus counts do not add up."""


def reason_kind(kind: str, row: Mapping) -> str:
    """A filter row's reason category: `near-duplicate`, `eval leak: <task>`, or the filter's name."""
    if kind == "dedup":
        return "near-duplicate"
    if kind == "decontam" and row.get("task"):
        return f"eval leak: {row['task']}"
    if kind == "heldout":
        return "held out for evaluation"
    if kind == "quality" and row.get("reason"):
        return f"low quality: {row['reason'].split()[1]}"
    return kind


def summarize_filters(counts: Sequence[str | Path], corpus: Sequence[str | Path],
                      filters: Mapping[str, Sequence[str | Path]], output: str | Path,
                      dedup_counts: Sequence[str | Path] = ()) -> dict:
    """Write results/filter/summary.json: per shard and in total, input rows, rejected at ingest, removed by
    a filter (each document once, whatever number of filters removed it) and kept, with counts per reason.

    ``counts`` and ``corpus`` are the ingest counts and corpus shards in the same order; ``filters`` maps a
    filter's name (dedup, decontam) to its id lists. Every filtered id must be a corpus document.
    """
    if len(counts) != len(corpus):
        raise FilterError(f"{len(counts)} count files but {len(corpus)} corpus shards")
    by_id: dict[str, set[str]] = {}
    by_reason: Counter = Counter()
    by_filter: Counter = Counter()
    for kind in sorted(filters):
        for path in filters[kind]:
            table = pq.read_table(path)
            if "id" not in table.column_names:
                raise FilterError(f"filter list {path} has no `id` column (columns: {table.column_names})")
            for row in table.to_pylist():
                if row["id"] is None:
                    raise FilterError(f"filter list {path}: a row without id")
                by_id.setdefault(row["id"], set()).add(kind)
                by_reason[reason_kind(kind, row)] += 1
                by_filter[kind] += 1
    shards: dict[str, dict] = {}
    found: set[str] = set()
    for count_path, corpus_path in zip(counts, corpus, strict=True):
        with open(count_path, encoding="utf-8") as fh:
            c = json.load(fh)
        rejected = sum(c["rejected"].values())
        if c["input_rows"] != c["kept"] + rejected:
            raise FilterError(f"{count_path}: input_rows {c['input_rows']} != kept {c['kept']} + rejected {rejected}")
        n_rows = pq.ParquetFile(corpus_path).metadata.num_rows
        if n_rows != c["kept"]:
            raise FilterError(f"{corpus_path} has {n_rows} rows but {count_path} says {c['kept']} were kept")
        filtered = 0
        for batch in pq.ParquetFile(corpus_path).iter_batches(columns=["id"], batch_size=65536):
            for doc_id in batch.column("id").to_pylist():
                if doc_id in by_id:
                    filtered += 1
                    found.add(doc_id)
        shard = Path(corpus_path).name.removesuffix(".parquet")
        shards[shard] = {"input_rows": c["input_rows"], "rejected": rejected, "filtered": filtered,
                         "kept": c["kept"] - filtered}
    missing = sorted(set(by_id) - found)
    if missing:
        raise FilterError(f"{len(missing)} filtered id(s) are not corpus documents, e.g. {missing[:5]}")
    rejected_reasons: Counter = Counter()
    for count_path in counts:
        with open(count_path, encoding="utf-8") as fh:
            rejected_reasons.update(json.load(fh)["rejected"])
    total = {key: sum(s[key] for s in shards.values()) for key in ("input_rows", "rejected", "filtered", "kept")}
    assert total["input_rows"] == total["kept"] + total["filtered"] + total["rejected"]
    dedup_by_cluster: list[dict[str, int]] = []
    for path in dedup_counts:
        with open(path, encoding="utf-8") as fh:
            dedup_by_cluster += json.load(fh)["clusters"]
    dedup_by_cluster.sort(key=lambda entry: entry["cluster"])
    summary = {
        **total,
        "identity": "input_rows = kept + filtered + rejected",
        "rejected_by_reason": dict(sorted(rejected_reasons.items())),
        "filtered_by_filter": {k: by_filter.get(k, 0) for k in sorted(filters)},
        "filtered_by_several": sum(1 for kinds in by_id.values() if len(kinds) > 1),
        "filtered_by_reason": dict(sorted(by_reason.items())),
        "dedup_by_cluster": dedup_by_cluster,
        "shards": shards,
    }
    write_json(output, summary)
    log.info("filters: %d input rows = %d kept + %d filtered + %d rejected", total["input_rows"], total["kept"],
             total["filtered"], total["rejected"])
    return summary


def merge_filter_lists(paths: Sequence[str | Path], out_path: str | Path) -> int:
    """One id list (``id``, ``reason``) from the per-group and per-shard lists, each id once (first reason kept).

    The proxies' sampler and export read this one file, so their jobs depend on one file rather than on every
    filter job: the DAG stays linear in the number of shards.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from climb.core.io import write_parquet

    tables = [pq.read_table(p, columns=["id", "reason"]) for p in paths]
    schema = pa.schema([("id", pa.string()), ("reason", pa.string())])
    merged = pa.concat_tables([t.cast(schema) for t in tables]) if tables else schema.empty_table()
    if merged.num_rows:
        first = pc.index_in(pc.unique(merged.column("id")), merged.column("id"))
        merged = merged.take(first).sort_by("id")
    write_parquet(out_path, merged)
    log.info("merged %d filter lists: %d ids removed", len(tables), merged.num_rows)
    return merged.num_rows


def write_file_manifest(paths: Sequence[str | Path], out_path: str | Path) -> None:
    """A manifest of per-shard files (path and size, in order) that a fan-in job depends on instead of the files.

    The manifest is rewritten whenever one of its files is, so downstream jobs still rerun when a shard changes,
    but each downstream job has one input edge rather than one per shard.
    """
    write_json(out_path, {"files": [{"path": str(p), "bytes": Path(p).stat().st_size} for p in paths]})


def manifest_paths(manifest_path: str | Path) -> list[str]:
    with open(manifest_path, encoding="utf-8") as fh:
        return [entry["path"] for entry in json.load(fh)["files"]]
