"""Input shard discovery: config patterns -> {shard name: path}, resolved once when the DAG is built."""

from __future__ import annotations

import glob
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


def select_fit_shards(names: list[str], fit_shards: int | list[str]) -> list[str]:
    """The shards the k-means fit reads: the first N names in sorted order, or the named ones."""
    if isinstance(fit_shards, int):
        return sorted(names)[:fit_shards]
    unknown = [s for s in fit_shards if s not in names]
    if unknown:
        raise ShardError(f"cluster.fit_shards: unknown shard(s) {unknown}; known: {sorted(names)[:10]}...")
    return sorted(fit_shards)
