"""The final mixture for the user's trainer: reading ``final_mixture.json`` and writing blends.

A blend is the same weights in the form a trainer takes them: Megatron-LM's ``--data-path`` weight list
(``w1 prefix1 w2 prefix2 ...``, one prefix per super-cluster, e.g. the indexed dataset made from that
super-cluster's ClimbLab folder) and a plain JSON ``{super-cluster name: weight}``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from climb.core.io import atomic_open, write_json
from climb.search.mixture_file import MixtureError, read_mixture_weights
from climb.superclusters.superclusters_file import read_superclusters

log = logging.getLogger("climb.export.blend")


def read_mixture(path: str | os.PathLike, known: list[int], tolerance: float = 1e-6) -> dict[int, float]:
    """Weights of a mixture file (:func:`climb.search.mixture_file.read_mixture_weights`) over ``known`` ids, missing
    ones 0, renormalised to sum to exactly 1."""
    weights = read_mixture_weights(path, known, tolerance)
    total = sum(weights.values())
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
