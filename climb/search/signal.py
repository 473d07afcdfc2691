"""Does the search see signal, and is its answer supported? Noise floor, per-round signal-to-noise, predictor skill
and the final mixture's verdict.

- Noise floor: ``search.replicates`` proxies of the natural mixture (the token prior), each with its own seed
  (``results/search/pool/replicate{j}``), and the pool's first mixture with the same seeds (``pool/contrast{j}``;
  contrast 0 is ``pool/mix0`` itself). The noise is the std over seeds of the pairs' difference / sqrt(2): the
  search's proxies share one seed, so a seed's effect on every score alike cannot reorder them (:func:`noise_floor`).
- Signal of a round: the standard deviation of the objectives of the mixtures that round evaluated; SNR = signal /
  noise. Mixtures that differ by less than the noise cannot be ranked by one proxy each.
- Predictor skill: out-of-fold Spearman of each round's predictor, and, once a proposal round is measured, the
  Spearman of the predictions it was proposed with against what its proxies scored.
- Verdict (the climb final mixture): supported when the SNR of everything the final predictor was fitted on (every
  round's mixtures: a last round of 2 neighbouring proposals spreads little even with signal), its skill and the
  predicted gain over the natural mixture (in noise units) reach their thresholds (``search.signal``) and no
  super-cluster is weighted far beyond its token share. An unsupported mixture is warned about, replaced by the
  natural mixture, or stops the run (``search.signal.on_unsupported``).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger("climb.search")

VERDICT_POLICIES = ("prior", "warn", "fail")


class UnsupportedMixtureError(ValueError):
    """The final mixture's verdict is unsupported and ``search.signal.on_unsupported`` is ``fail``."""


class LowSignalError(ValueError):
    """Round 1's signal is below the threshold and ``search.signal.on_low_signal`` is ``stop``."""


def noise_floor(objectives: Sequence[float | None], contrasts: Sequence[float | None] = ()) -> dict[str, Any]:
    """The noise the search's comparisons are measured against.

    ``objectives``: the natural mixture's replicates, replicate j trained with seed j (replicate 0 with the search's
    own seed); ``seed_std`` is their standard deviation (ddof=1). ``contrasts``: a second mixture (the pool's first)
    trained with the same seeds, contrast j beside replicate j. Every search proxy trains with one seed (common random
    numbers), so what can reorder two mixtures is not how a seed moves every score alike but how it moves one
    mixture's score against another's: ``paired_std`` = std over seeds of (contrast j - replicate j) / sqrt(2), one
    mixture's share of that difference's noise. ``std``, the noise every SNR and gain is measured in, is the paired
    noise when at least 2 seeds give a pair, else the seed noise; ``kind`` says which.
    """
    values = np.array([v for v in objectives if v is not None], dtype=np.float64)
    seed_std = float(values.std(ddof=1)) if len(values) >= 2 else None
    pairs = np.array([c - r for r, c in zip(objectives, contrasts, strict=False) if r is not None and c is not None],
                     dtype=np.float64)
    paired_std = float(pairs.std(ddof=1) / math.sqrt(2)) if len(pairs) >= 2 else None
    kind = "paired" if paired_std is not None else "seeds"
    return {"n_replicates": len(values), "n_failed": len(objectives) - len(values),
            "mean": float(values.mean()) if len(values) else None, "seed_std": seed_std,
            "n_pairs": len(pairs), "paired_std": paired_std, "kind": kind,
            "std": paired_std if kind == "paired" else seed_std}


def round_signal(objectives: np.ndarray, noise: dict[str, Any]) -> dict[str, Any]:
    """Spread of one round's objectives against the noise floor."""
    objectives = np.asarray(objectives, dtype=np.float64)
    std = float(objectives.std(ddof=1)) if len(objectives) >= 2 else None
    snr = std / noise["std"] if std is not None and noise.get("std") else None
    if noise.get("std") == 0.0 and std:
        snr = math.inf
    return {"n": len(objectives), "objective_std": std, "noise": noise.get("std"), "snr": snr}


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman correlation; None with fewer than 3 pairs or a constant side."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    from scipy.stats import spearmanr  # here: scipy.stats costs ~1.5 s of start-up in jobs that never rank

    return float(spearmanr(a, b).statistic)


def _check(name: str, value: float | None, threshold: float, at_least: bool, says: str) -> dict[str, Any]:
    ok = value is not None and (value >= threshold if at_least else value <= threshold)
    return {"check": name, "value": value, "threshold": threshold,
            "rule": ">=" if at_least else "<=", "ok": bool(ok), "says": says if value is not None else
            f"{says}: not measured"}


def verdict(snr: float | None, skill: float | None, gain: float | None, concentration: float | None,
            thresholds: dict[str, Any]) -> dict[str, Any]:
    """``supported`` and one reason per check (value, threshold, whether it passed)."""
    reasons = [
        _check("snr", snr, thresholds["min_snr"], True,
               "spread of the objectives the final predictor was fitted on (every round), in noise-floor "
               "standard deviations"),
        _check("skill", skill, thresholds["min_skill"], True,
               "out-of-fold Spearman of the final predictor (how well it ranks mixtures it did not see)"),
        _check("gain", gain, thresholds["min_gain"], True,
               "predicted objective of the final mixture minus that of the natural mixture, in noise standard "
               "deviations"),
        _check("concentration", concentration, thresholds["max_concentration"], False,
               "weight of the most weighted super-cluster divided by its token share"),
    ]
    return {"supported": all(r["ok"] for r in reasons), "reasons": reasons}


def concentration(weights: np.ndarray, token_share: np.ndarray) -> tuple[float, int]:
    """The most weighted super-cluster's weight over its token share, and its index."""
    top = int(np.argmax(weights))
    share = float(token_share[top])
    return (float(weights[top]) / share if share > 0 else math.inf), top


def describe(result: dict[str, Any]) -> str:
    """One line per reason, for logs and the run's closing summary."""
    lines = []
    for r in result["reasons"]:
        value = "n/a" if r["value"] is None else f"{r['value']:.3g}"
        lines.append(f"{'ok  ' if r['ok'] else 'FAIL'} {r['check']} {value} ({r['rule']} {r['threshold']}): {r['says']}")
    return "\n".join(lines)


def low_signal(summary: dict[str, Any], min_snr: float, policy: str, target: str) -> None:
    """After round 1: warn, or stop before later rounds spend their budget, when round 1 shows no signal."""
    snr = (summary.get("signal") or {}).get("snr")
    if snr is None or snr >= min_snr:
        return
    message = (f"target {target}: round 1's objectives spread {snr:.2f} noise-floor standard deviations "
               f"(search.signal.min_snr {min_snr}): the proxies cannot tell these mixtures apart, so later rounds are "
               "unlikely to find a better one. Raise proxy.tokens or the proxy size, evaluate on more held-out "
               "documents (evaluation.heldout.max_docs), or add replicates (search.replicates)")
    if policy == "stop":
        raise LowSignalError(message + "; search.signal.on_low_signal: warn goes on anyway")
    log.warning("%s", message)


def replicate_seed(seed: int, index: int) -> int:
    """Seed of noise-floor replicate ``index``: replicate 0 trains with the search's own seed, the others with
    their own (initial weights and data order)."""
    if index == 0:
        return seed
    return int(hashlib.sha256(f"{seed}/replicate/{index}".encode()).hexdigest()[:8], 16)
