"""The final mixture for the user's trainer: reading ``final_mixture.json`` and writing blends.

A blend is the same weights in the form a trainer takes them: Megatron-LM's ``--data-path`` weight list
(``w1 prefix1 w2 prefix2 ...``, one prefix per super-cluster, e.g. the indexed dataset made from that
super-cluster's ClimbLab folder) and a plain JSON ``{super-cluster name: weight}``.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from climb.core.io import atomic_open, read_json, write_json
from climb.superclusters.superclusters_file import read_superclusters

log = logging.getLogger("climb.export.blend")


class MixtureError(ValueError):
    """A mixture file that cannot be used (names the file and the offending key)."""


def read_mixture(path: str | os.PathLike, known: list[int], tolerance: float = 1e-6) -> dict[int, float]:
    """Weights ``{"weights": {"<super-cluster id>": w}}`` over ``known`` ids (missing ones are 0).

    A token prior (``tokens/prior.json``, ``{"prior": {...}}``) is read as the mixture of its prior. Weights must be finite, non-negative, name known super-clusters and sum to 1 (within ``tolerance``);
    they are renormalised to sum to exactly 1.
    """
    data = read_json(path)
    if isinstance(data, dict) and "weights" not in data and isinstance(data.get("prior"), dict):
        data = {"weights": data["prior"]}
    if not isinstance(data, dict) or not isinstance(data.get("weights"), dict):
        raise MixtureError(f"{path}: expected an object with a \"weights\" object {{\"<super-cluster id>\": float}}")
    weights = dict.fromkeys(sorted(known), 0.0)
    for key, value in data["weights"].items():
        try:
            sc = int(key)
        except ValueError as err:
            raise MixtureError(f"{path}: weights key {key!r} is not a super-cluster id") from err
        if sc not in weights:
            raise MixtureError(f"{path}: weights key {key!r}: super-cluster {sc} is not in superclusters.json "
                               f"(known: {sorted(known)})")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise MixtureError(f"{path}: weights key {key!r} is {value!r}; weights must be finite numbers >= 0")
        weights[sc] = float(value)
    total = sum(weights.values())
    if abs(total - 1.0) > tolerance:
        raise MixtureError(f"{path}: weights sum to {total!r}, not 1")
    return {sc: w / total for sc, w in weights.items()}


def megatron_data_path(weights: dict[int, float], names: dict[int, str], prefix_template: str) -> str:
    """Megatron-LM ``--data-path`` argument: ``weight prefix`` pairs of the super-clusters with weight > 0.

    ``prefix_template`` is formatted with ``name`` (e.g. ``sc03``) and ``id`` of each super-cluster.
    """
    pairs = []
    for sc, w in sorted(weights.items()):
        if w <= 0:
            continue
        try:
            prefix = prefix_template.format(name=names[sc], id=sc)
        except (KeyError, IndexError) as err:
            raise MixtureError(f"export.blend.megatron_prefix {prefix_template!r}: unknown field {err}; "
                               "use {name} and {id}") from err
        pairs.append(f"{w:.10g} {prefix}")
    return " ".join(pairs)


def write_blends(mixture_path: str, superclusters_path: str, megatron_path: str, json_path: str,
                 prefix_template: str) -> dict[str, Any]:
    """Write the final weights as a Megatron-LM weight list and as ``{super-cluster name: weight}`` JSON."""
    names = read_superclusters(superclusters_path).names
    weights = read_mixture(mixture_path, list(names))
    line = megatron_data_path(weights, names, prefix_template)
    with atomic_open(megatron_path, "w", encoding="utf-8") as fh:
        fh.write(line + "\n")
    plain = {names[sc]: w for sc, w in weights.items()}
    write_json(json_path, plain)
    log.info("blend: %s", line)
    return plain
