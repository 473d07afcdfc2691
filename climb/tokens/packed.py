"""Tokenize every ingested document once, per shard, into a packed memory-mapped token file with an index.

``tokens/{shard}.bin`` is the concatenation of every document's tokens followed by EOS, in corpus order,
as raw little-endian ``uint16`` (vocabulary <= 65,536) or ``uint32``. ``tokens/{shard}.idx.parquet`` has one row
per document: ``id``, ``offset`` (in tokens), ``length`` (tokens including the trailing EOS) and ``cluster``
(from k-means). The dtype is stored in the index's schema metadata (``climb.dtype``) and checked against the
file size when read. Super-cluster membership and filters are applied when proxies sample, so pruning or
dedup changes never re-tokenize.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from climb.core.io import atomic_open, write_json, write_parquet
from climb.superclusters.superclusters_file import read_superclusters
from climb.tokens.tokenizer import load_tokenizer

log = logging.getLogger(__name__)

DTYPE_KEY = b"climb.dtype"


class TokenizeError(ValueError):
    """Inputs of tokenization are inconsistent."""


def token_dtype(vocab_size: int) -> np.dtype:
    """Smallest unsigned dtype that holds every token id."""
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


def tokenize_shard(corpus_path: str, assign_path: str, tokenizer_dir: str, bin_path: str, idx_path: str,
                   batch_rows: int = 4096) -> dict:
    """Tokenize one corpus shard; returns a summary (documents, tokens, dtype)."""
    tok = load_tokenizer(tokenizer_dir)
    eos = tok.eos_token_id
    dtype = token_dtype(len(tok))
    assign = pq.read_table(assign_path, columns=["id", "cluster"])
    corpus = pq.ParquetFile(corpus_path)
    if corpus.metadata.num_rows != assign.num_rows:
        raise TokenizeError(f"{corpus_path} has {corpus.metadata.num_rows} rows but {assign_path} has {assign.num_rows}")
    ids: list[pa.Array] = []
    lengths: list[np.ndarray] = []
    row = 0
    with atomic_open(bin_path, "wb") as fh:
        for batch in corpus.iter_batches(batch_size=batch_rows, columns=["id", "text"]):
            batch_ids = batch.column("id")
            expected = assign.column("id").slice(row, len(batch_ids)).combine_chunks()
            if not batch_ids.equals(expected):
                bad = next(i for i in range(len(batch_ids)) if batch_ids[i] != expected[i])
                raise TokenizeError(f"{assign_path} row {row + bad}: id {expected[bad]} differs from corpus id "
                                    f"{batch_ids[bad]} in {corpus_path} (assignments must keep corpus row order)")
            encoded = tok(batch.column("text").to_pylist(), add_special_tokens=False)["input_ids"]
            lens = np.fromiter((len(e) + 1 for e in encoded), dtype=np.int64, count=len(encoded))
            flat = np.empty(int(lens.sum()), dtype=dtype)
            pos = 0
            for e in encoded:
                flat[pos : pos + len(e)] = e
                flat[pos + len(e)] = eos
                pos += len(e) + 1
            fh.write(flat.tobytes())
            ids.append(batch_ids)
            lengths.append(lens)
            row += len(batch_ids)
    length = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    offset = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64) if len(length) else length
    table = pa.table({
        "id": pa.concat_arrays([a.cast(pa.string()) for a in ids]) if ids else pa.array([], pa.string()),
        "offset": pa.array(offset, pa.int64()),
        "length": pa.array(length.astype(np.int32), pa.int32()),
        "cluster": assign.column("cluster").cast(pa.int32()).combine_chunks(),
    }).replace_schema_metadata({DTYPE_KEY: dtype.name.encode(), b"climb.eos": str(eos).encode()})
    write_parquet(idx_path, table)
    summary = {"documents": int(len(length)), "tokens": int(length.sum()), "dtype": dtype.name}
    log.info("%s: %s", corpus_path, summary)
    return summary


@dataclass
class TokenShard:
    """A tokenized shard: its index table and the memory-mapped tokens."""

    index: pa.Table
    tokens: np.memmap


def open_shard(bin_path: str | os.PathLike, idx_path: str | os.PathLike) -> TokenShard:
    """Open a tokenized shard, checking that the token file matches its index."""
    index = pq.read_table(idx_path)
    meta = index.schema.metadata or {}
    if DTYPE_KEY not in meta:
        raise TokenizeError(f"{idx_path}: no {DTYPE_KEY.decode()} in schema metadata; not written by climb.tokens.packed")
    dtype = np.dtype(meta[DTYPE_KEY].decode())
    n_tokens = int(pc.sum(index.column("length")).as_py() or 0)
    size = Path(bin_path).stat().st_size
    if size != n_tokens * dtype.itemsize:
        raise TokenizeError(f"{bin_path}: {size} bytes, but {idx_path} describes {n_tokens} tokens of {dtype.name}")
    tokens = np.memmap(bin_path, dtype=dtype, mode="r") if n_tokens else np.zeros(0, dtype)
    return TokenShard(index=index, tokens=tokens)


def read_filtered_ids(filter_paths: list[str]) -> pa.Array:
    """Union of the ids in the filter lists (parquet files with an ``id`` column)."""
    arrays = []
    for path in filter_paths:
        table = pq.read_table(path)
        if "id" not in table.column_names:
            raise TokenizeError(f"filter list {path} has no `id` column (columns: {table.column_names})")
        arrays.append(table.column("id").cast(pa.string()).combine_chunks())
    if not arrays:
        return pa.array([], pa.string())
    return pc.unique(pa.concat_arrays(arrays))


def usable_rows(index: pa.Table, cluster_to_sc: dict[int, int], filtered: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Per index row: its super-cluster (-1 when pruned) and whether it is usable (kept and not filtered)."""
    clusters = index.column("cluster").to_numpy()
    lut_size = max([*cluster_to_sc.keys(), int(clusters.max()) if len(clusters) else 0]) + 1
    lut = np.full(lut_size, -1, dtype=np.int64)
    for c, s in cluster_to_sc.items():
        lut[c] = s
    sc = lut[clusters] if len(clusters) else np.zeros(0, np.int64)
    keep = sc >= 0
    if len(filtered):
        keep &= ~pc.is_in(index.column("id"), value_set=filtered).to_numpy(zero_copy_only=False)
    return sc, keep


def token_prior(idx_paths: list[str], superclusters_path: str, filter_paths: list[str], out_path: str) -> dict:
    """Tokens and documents per super-cluster (kept clusters, filtered ids excluded) and the token-share prior."""
    superclusters = read_superclusters(superclusters_path)
    cluster_to_sc, sc_ids = superclusters.cluster_to_sc, superclusters.ids
    filtered = read_filtered_ids(filter_paths)
    tokens = dict.fromkeys(sc_ids, 0)
    docs = dict.fromkeys(sc_ids, 0)
    excluded = {"pruned_docs": 0, "filtered_docs": 0, "pruned_tokens": 0, "filtered_tokens": 0}
    for path in idx_paths:
        index = pq.read_table(path, columns=["id", "length", "cluster"])
        sc, keep = usable_rows(index, cluster_to_sc, filtered)
        length = index.column("length").to_numpy().astype(np.int64)
        pruned = sc < 0
        excluded["pruned_docs"] += int(pruned.sum())
        excluded["pruned_tokens"] += int(length[pruned].sum())
        excluded["filtered_docs"] += int((~pruned & ~keep).sum())
        excluded["filtered_tokens"] += int(length[~pruned & ~keep].sum())
        for s in sc_ids:
            mask = keep & (sc == s)
            tokens[s] += int(length[mask].sum())
            docs[s] += int(mask.sum())
    total = sum(tokens.values())
    if total == 0:
        raise TokenizeError(f"no tokens left in any super-cluster of {superclusters_path} after filters")
    result = {
        "total_tokens": total,
        "tokens": {str(s): tokens[s] for s in sc_ids},
        "docs": {str(s): docs[s] for s in sc_ids},
        "prior": {str(s): tokens[s] / total for s in sc_ids},
        "excluded": excluded,
    }
    write_json(out_path, result)
    log.info("prior: %s", json.dumps(result["prior"]))
    return result
