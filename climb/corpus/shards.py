"""Input shard discovery and batching, resolved once when the DAG is built.

config patterns -> {input shard name: path} (resolve_shards); input shards -> corpus shards, batches of about
``input.shards_per_job`` input shards each (batch_shards). Every per-shard stage (ingest, embed, assign, quality
scores, filters, tokenize, ClimbMix select) runs one job per corpus shard, so the batch size sets how many jobs
the DAG holds: 20,000 input shards at 20 per job are ~1,000 jobs per stage instead of 20,000.
"""

from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path

SUFFIXES = (".jsonl.gz", ".jsonl.zst", ".jsonl", ".parquet")
EMBEDDED_PREFIX = "embedded-"


class ShardError(ValueError):
    """The configured input cannot be turned into a list of shards."""


def shard_name(path: str | os.PathLike) -> str:
    """A shard's name: its file name without the input extension."""
    name = Path(path).name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    raise ShardError(f"{path}: not an input shard (expected one of {', '.join(SUFFIXES)})")


def embedded_shards(n_shards: int, folder: str) -> dict[str, str]:
    """Names and paths of the embedded default corpus's shards."""
    return {f"{EMBEDDED_PREFIX}{i:03d}": f"{folder}/{EMBEDDED_PREFIX}{i:03d}.jsonl" for i in range(n_shards)}


def resolve_shards(patterns: list[str]) -> dict[str, str]:
    """Expand paths and globs into an ordered {name: path}; every pattern must match and names be unique."""
    shards: dict[str, str] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        matches = [m for m in matches if not Path(m).is_dir()]
        if not matches:
            raise ShardError(f"input.shards: pattern {pattern!r} matches no file")
        for path in matches:
            if not Path(path).exists():
                raise ShardError(f"input.shards: {path}: no such file")
            name = shard_name(path)
            if name in shards and shards[name] != path:
                raise ShardError(f"input.shards: shard name {name!r} is given by both {shards[name]} and {path}; rename one")
            shards[name] = path
    return dict(sorted(shards.items()))


def _name_hash(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little")


def batch_shards(names: list[str], shards_per_job: int) -> dict[str, list[str]]:
    """Input shard names -> {corpus shard name: its input shard names}, in sorted order.

    Boundaries are content-defined (as in content-defined chunking): once a batch holds half of
    ``shards_per_job``, an input shard starts a new batch when a hash of its own name says so, chosen so that
    batches hold ``shards_per_job`` on average; a batch never holds more than twice that. A shard added later
    therefore joins, or splits, the batch it sorts into, and seldom moves a cut after it
    (tests/test_shard_batches.py measures how far): the other batches keep their names and members and their jobs
    do not rerun. A batch is named after its first input shard, so with ``shards_per_job`` = 1 every corpus shard
    is its input shard, under the same name.
    """
    if shards_per_job < 1:
        raise ShardError(f"input.shards_per_job must be >= 1, got {shards_per_job}")
    least = max(1, shards_per_job // 2)
    period = shards_per_job - least + 1  # expected batch size: least + period - 1 = shards_per_job
    batches: dict[str, list[str]] = {}
    current: list[str] = []
    for name in sorted(names):
        full = len(current) >= 2 * shards_per_job
        if not current or full or (len(current) >= least and _name_hash(name) % period == 0):
            current = batches.setdefault(name, [])
        current.append(name)
    return batches


def select_fit_shards(batches: dict[str, list[str]], fit_shards: int | list[str]) -> list[str]:
    """The corpus shards the k-means fit reads: those holding the first N input shards in sorted order, or the
    named input shards."""
    owner = {name: batch for batch, members in batches.items() for name in members}
    if isinstance(fit_shards, int):
        wanted = sorted(owner)[:fit_shards]
    else:
        unknown = [s for s in fit_shards if s not in owner]
        if unknown:
            raise ShardError(f"cluster.fit_shards: unknown shard(s) {unknown}; known: {sorted(owner)[:10]}...")
        wanted = fit_shards
    return sorted({owner[name] for name in wanted})
