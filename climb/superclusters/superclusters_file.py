"""The one reader of ``clusters/superclusters.json`` (written by :func:`climb.superclusters.merge.merge_superclusters`).

The file holds ``superclusters`` (``id``, ``name``, ``clusters``, sizes) and ``cluster_to_supercluster`` (kept
clusters only: a pruned cluster is in neither). Every stage that needs super-clusters reads it here, so a malformed
file fails the same way, naming the file, wherever it is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from climb.core.io import read_json


class SuperclusterFileError(ValueError):
    """A super-cluster file that cannot be used (names the file and what is wrong)."""


@dataclass(frozen=True)
class Superclusters:
    cluster_to_sc: dict[int, int]  # kept cluster -> super-cluster id
    names: dict[int, str]  # super-cluster id -> name, in file order
    members: dict[int, list[int]]  # super-cluster id -> its clusters
    entries: list[dict[str, Any]]  # the file's `superclusters` list as written

    @property
    def ids(self) -> list[int]:
        return sorted(self.names)


def read_superclusters(path: str | os.PathLike) -> Superclusters:
    """Read and check ``clusters/superclusters.json``."""
    data = read_json(path)
    try:
        entries = list(data["superclusters"])
        names = {int(s["id"]): str(s.get("name", f"sc{int(s['id']):02d}")) for s in entries}
        members = {int(s["id"]): [int(c) for c in s.get("clusters", [])] for s in entries}
        mapping = {int(c): int(s) for c, s in data["cluster_to_supercluster"].items()}
    except (KeyError, TypeError, ValueError) as err:
        raise SuperclusterFileError(f"{path}: malformed super-cluster file ({err!r})") from err
    unknown = set(mapping.values()) - set(names)
    if unknown:
        raise SuperclusterFileError(f"{path}: cluster_to_supercluster names unknown super-cluster(s) {sorted(unknown)}")
    return Superclusters(cluster_to_sc=mapping, names=names, members=members, entries=entries)
