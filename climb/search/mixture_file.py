"""The one reader of a mixture file: ``{"weights": {"<super-cluster id>": w}}``.

The search writes them (every proxy's ``weights.json``, each strategy's ``final_mixture.json``, the validation's
``mixture.json``); the proxies, the search's predictors, the export, the report and validation read them here, so a
malformed file fails the same way, naming the file and the key, wherever it is read. A token prior
(``tokens/prior.json``, ``{"prior": {...}}``) is read as the mixture of its prior.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

from climb.core.io import read_json


class MixtureError(ValueError):
    """A mixture file that cannot be used (names the file and the offending key)."""


def read_mixture_weights(path: str | os.PathLike, known: Iterable[int], tolerance: float = 1e-6) -> dict[int, float]:
    """The weights of every ``known`` super-cluster (absent ones 0), as written: finite, >= 0, of known ids, summing
    to 1 within ``tolerance``. Raises :class:`MixtureError` naming the file and the key otherwise."""
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
                               f"(known: {sorted(weights)})")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise MixtureError(f"{path}: weights key {key!r} is {value!r}; weights must be finite numbers >= 0")
        weights[sc] = float(value)
    total = sum(weights.values())
    if abs(total - 1.0) > tolerance:
        raise MixtureError(f"{path}: weights sum to {total!r}, not 1")
    return weights
