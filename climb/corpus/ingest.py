"""Ingest: one input shard (JSONL, .jsonl.gz, .jsonl.zst or Parquet) -> the corpus contract.

Every input row ends up in exactly one place: the corpus Parquet (kept) or the shard's rejects JSONL, with a
reason code and a human-readable detail naming the file and row. ``input_rows == kept + rejected`` is written
to the shard's counts file and checked before the outputs are published.

Problems with the file as a whole (a missing text column, an unreadable Parquet file) are not rows: they stop
the job with an :class:`IngestError` naming the file and the reason.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from climb.core.io import atomic_open, atomic_path, write_json
from climb.corpus.shards import shard_name

log = logging.getLogger(__name__)

CORPUS_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("text", pa.string()),
    ("n_chars", pa.int64()),
    ("source", pa.string()),
    ("origin", pa.string()),
])

# Reason codes of rejected rows; the detail in the rejects file says more.
REASONS = ("blank_line", "invalid_utf8", "malformed_json", "not_an_object", "missing_text", "null_text",
           "non_string_text", "empty_text", "bad_id", "duplicate_id", "duplicate_text", "too_long")


class IngestError(ValueError):
    """A shard that cannot be read as a whole (names the file and the reason)."""


@dataclass
class RawRow:
    """One input row: its 0-based position, and either a parsed record or a reason it could not be parsed."""

    row: int
    record: dict[str, Any] | None = None
    reason: str | None = None
    detail: str = ""
    excerpt: str = ""


@dataclass
class ShardCounts:
    shard: str
    files: list[str] = field(default_factory=list)
    input_rows: int = 0
    kept: int = 0
    truncated: int = 0
    rejected: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"shard": self.shard, "files": self.files, "input_rows": self.input_rows, "kept": self.kept,
                "truncated": self.truncated, "rejected": dict(sorted(self.rejected.items())),
                "rejected_total": sum(self.rejected.values())}


# --------------------------------------------------------------------------------------------- readers


def _open_binary(path: Path) -> io.BufferedIOBase:
    name = path.name
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".zst"):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))
    return open(path, "rb")


def read_jsonl(path: Path) -> Iterator[RawRow]:
    """Rows of a JSON-lines file, undecodable ones as rows with a reason. Row = line number - 1."""
    try:
        with _open_binary(path) as fh:
            for row, raw in enumerate(fh):
                raw = raw.rstrip(b"\r\n")
                excerpt = raw[:200].decode("utf-8", errors="replace")
                if not raw.strip():
                    yield RawRow(row, reason="blank_line", detail="blank line")
                    continue
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    yield RawRow(row, reason="invalid_utf8", detail=f"invalid UTF-8 at byte {err.start}",
                                 excerpt=excerpt)
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    yield RawRow(row, reason="malformed_json", detail=f"malformed JSON: {err.msg} at column {err.colno}",
                                 excerpt=excerpt)
                    continue
                if not isinstance(record, dict):
                    yield RawRow(row, reason="not_an_object",
                                 detail=f"a JSON {type(record).__name__}, not an object", excerpt=excerpt)
                    continue
                yield RawRow(row, record=record)
    except (OSError, EOFError) as err:
        raise IngestError(f"{path}: cannot read ({err})") from err


def read_parquet(path: Path, columns: list[str], batch_rows: int) -> Iterator[RawRow]:
    """Rows of a Parquet file; the text column must exist and hold strings."""
    try:
        pf = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a broken file
        raise IngestError(f"{path}: not a readable Parquet file ({err})") from err
    schema = pf.schema_arrow
    text_col = columns[0]
    if text_col not in schema.names:
        raise IngestError(f"{path}: no column {text_col!r} (input.text_field); columns are {schema.names}")
    text_type = schema.field(text_col).type
    if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
        raise IngestError(f"{path}: column {text_col!r} has type {text_type}, expected string")
    present = [c for c in columns if c in schema.names]
    row = 0
    for batch in pf.iter_batches(batch_size=batch_rows, columns=present):
        for record in batch.to_pylist():
            yield RawRow(row, record=record)
            row += 1


# --------------------------------------------------------------------------------------------- validation


def _text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def ingest_shard(input_paths: list[str | Path] | str | Path, corpus_path: str | Path, rejects_path: str | Path,
                 counts_path: str | Path, shard: str, text_field: str = "text", id_field: str | None = "id",
                 origin_field: str | None = "origin", max_chars: int = 100_000, on_too_long: str = "truncate",
                 drop_exact_duplicates: bool = True, batch_rows: int = 50_000) -> ShardCounts:
    """Read the input shards of one corpus shard (a batch, input.shards_per_job; in order) and write its corpus
    Parquet, rejects JSONL and counts JSON (all atomically).

    Each input shard is read as if alone: its rows are numbered from 0, an id it lacks is ``{its name}:{row}``,
    and duplicate ids and texts are looked for within it (summarize_corpus checks ids across all of them), so the
    kept rows and their ids do not depend on how input shards are batched.
    """
    paths = [Path(p) for p in ([input_paths] if isinstance(input_paths, str | Path) else input_paths)]
    for path in paths:
        if not path.exists():
            raise IngestError(f"{path}: no such input file")
    counts = ShardCounts(shard=shard, files=[path.name for path in paths])
    buffer: dict[str, list] = {name: [] for name in CORPUS_SCHEMA.names}

    # the corpus innermost: a full disk's error (Arrow names no file) is reported for the big output
    with atomic_open(rejects_path, "w", encoding="utf-8") as rejects, atomic_path(corpus_path) as tmp_corpus:
        writer = pq.ParquetWriter(tmp_corpus, CORPUS_SCHEMA, compression="zstd")

        def reject(raw: RawRow, reason: str, detail: str, doc_id: str | None = None) -> None:
            counts.rejected[reason] += 1
            entry = {"file": path.name, "row": raw.row, "reason": reason, "detail": detail}  # the file being read
            if doc_id is not None:
                entry["id"] = doc_id
            if raw.excerpt:
                entry["excerpt"] = raw.excerpt
            rejects.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")

        def flush() -> None:
            if buffer["id"]:
                writer.write_table(pa.table(buffer, schema=CORPUS_SCHEMA))
                for values in buffer.values():
                    values.clear()

        for path in paths:
            name = shard_name(path) if len(paths) > 1 else shard
            seen_ids: dict[str, int] = {}
            seen_texts: dict[bytes, tuple[str, int]] = {}
            for raw in _read_rows(path, text_field, id_field, origin_field, batch_rows):
                counts.input_rows += 1
                if raw.reason is not None:
                    reject(raw, raw.reason, raw.detail)
                    continue
                record = raw.record
                assert record is not None
                # id
                value = record.get(id_field) if id_field else None
                if value is None:
                    doc_id = f"{name}:{raw.row}"
                elif isinstance(value, bool) or not isinstance(value, str | int):
                    reject(raw, "bad_id", f"id field {id_field!r} is a {type(value).__name__}, expected a string or integer")
                    continue
                else:
                    doc_id = str(value)
                    if not doc_id.strip():
                        reject(raw, "bad_id", f"id field {id_field!r} is empty")
                        continue
                # text
                if text_field not in record:
                    reject(raw, "missing_text", f"no field {text_field!r}", doc_id)
                    continue
                text = record[text_field]
                if text is None:
                    reject(raw, "null_text", f"field {text_field!r} is null", doc_id)
                    continue
                if not isinstance(text, str):
                    reject(raw, "non_string_text", f"field {text_field!r} is a {type(text).__name__}, not a string", doc_id)
                    continue
                if not text.strip():
                    reject(raw, "empty_text", "text is empty or whitespace only", doc_id)
                    continue
                if len(text) > max_chars:
                    if on_too_long == "reject":
                        reject(raw, "too_long", f"{len(text)} characters > ingest.max_chars={max_chars}", doc_id)
                        continue
                    text = text[:max_chars]
                    counts.truncated += 1
                # duplicates
                if doc_id in seen_ids:
                    reject(raw, "duplicate_id", f"id {doc_id!r} already used at row {seen_ids[doc_id]}", doc_id)
                    continue
                if drop_exact_duplicates:
                    key = _text_key(text)
                    if key in seen_texts:
                        first_id, first_row = seen_texts[key]
                        reject(raw, "duplicate_text", f"same text as id {first_id!r} (row {first_row})", doc_id)
                        continue
                    seen_texts[key] = (doc_id, raw.row)
                seen_ids[doc_id] = raw.row
                origin = record.get(origin_field) if origin_field else None
                buffer["id"].append(doc_id)
                buffer["text"].append(text)
                buffer["n_chars"].append(len(text))
                buffer["source"].append(path.name)
                buffer["origin"].append(origin if isinstance(origin, str) else None)
                counts.kept += 1
                if len(buffer["id"]) >= batch_rows:
                    flush()
        flush()
        writer.close()
        total = counts.kept + sum(counts.rejected.values())
        if total != counts.input_rows:  # the accounting identity; a bug here must never publish outputs
            raise AssertionError(f"{shard}: {counts.input_rows} rows in, {total} accounted for")

    write_json(counts_path, counts.as_dict())
    log.info("%s (%d file(s)): %d rows, %d kept, %d rejected %s, %d truncated", shard, len(paths), counts.input_rows,
             counts.kept, sum(counts.rejected.values()), dict(counts.rejected), counts.truncated)
    return counts


def _read_rows(path: Path, text_field: str, id_field: str | None, origin_field: str | None,
               batch_rows: int) -> Iterator[RawRow]:
    """The rows of one input shard, JSONL (plain, .gz, .zst) or Parquet."""
    if path.name.endswith(".parquet"):
        return read_parquet(path, [text_field] + [c for c in (id_field, origin_field) if c], batch_rows)
    return read_jsonl(path)


def _id_hashes(ids: list[str]) -> np.ndarray:
    return np.fromiter((int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little") for i in ids),
                       dtype=np.uint64, count=len(ids))


def _ids_by_source(corpus_path: str) -> dict[str, list[str]]:
    table = pq.read_table(corpus_path, columns=["id", "source"])
    by_id: dict[str, list[str]] = {}
    for doc_id, source in zip(table.column("id").to_pylist(), table.column("source").to_pylist(), strict=True):
        by_id.setdefault(doc_id, []).append(source)
    return by_id


def check_unique_ids(corpus_paths: list[str]) -> None:
    """Ids must be unique across input shards (ingest checks within each), also between the input shards batched
    into one corpus shard. Holds 8 bytes per document."""
    hashes = [_id_hashes(pq.read_table(p, columns=["id"]).column("id").to_pylist()) for p in corpus_paths]
    owners = np.concatenate([np.full(len(h), i, dtype=np.int32) for i, h in enumerate(hashes)]) if hashes else []
    allh = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
    order = np.argsort(allh, kind="stable")
    dup = np.flatnonzero(allh[order][1:] == allh[order][:-1])
    for j in dup:  # a hash collision is possible: confirm with the ids themselves
        a, b = order[j], order[j + 1]
        same_file = owners[a] == owners[b]  # two input shards batched into one corpus shard
        ids_a = _ids_by_source(corpus_paths[owners[a]])
        ids_b = ids_a if same_file else _ids_by_source(corpus_paths[owners[b]])
        common = sorted(i for i, sources in ids_a.items() if len(sources) > 1) if same_file \
            else sorted(ids_a.keys() & ids_b.keys())
        if common:
            first = common[0]
            where = [f"{corpus_paths[owners[a]]} (from {ids_a[first][0]})",
                     f"{corpus_paths[owners[b]]} (from {ids_b[first][-1]})"]
            raise IngestError(f"id {first!r} occurs in both {where[0]} and {where[1]}: ids must be unique across "
                              f"shards (set input.id_field: null to number rows per shard instead)")


def summarize_corpus(counts_paths: list[str], corpus_paths: list[str], summary_path: str) -> dict[str, Any]:
    """Totals over all shards, after checking that ids are unique across shards."""
    shards = [json.loads(Path(p).read_text()) for p in counts_paths]
    check_unique_ids(corpus_paths)
    rejected: Counter = Counter()
    for s in shards:
        rejected.update(s["rejected"])
    summary = {
        "shards": len(shards),
        "input_rows": sum(s["input_rows"] for s in shards),
        "kept": sum(s["kept"] for s in shards),
        "truncated": sum(s["truncated"] for s in shards),
        "rejected": dict(sorted(rejected.items())),
        "rejected_total": sum(rejected.values()),
        "per_shard": {s["shard"]: {k: s[k] for k in ("input_rows", "kept", "rejected_total")} for s in shards},
    }
    write_json(summary_path, summary)
    return summary
