"""DoReMi (Xie et al. 2023, arXiv 2305.10429) on the search's super-clusters: Group DRO domain weights.

The procedure of DoReMi's paper (Algorithm 1) and code (``sangmichaelxie/doremi``, ``doremi/trainer.py``,
``DoReMiTrainer.update_domain_weights`` with ``doremi_optimizer: doremiv1``), on the proxies' own training code
(:mod:`climb.proxy.train`, its domain-weight hook):

1. A reference proxy trained on the natural mixture (the token shares).
2. A DRO proxy of the same size and token budget, its batches drawn from the same natural mixture, starting from
   uniform domain weights. Every step: the per-token excess loss (DRO proxy minus reference) is clipped at 0 and
   averaged per domain over that step's tokens (a domain absent from the step keeps its last score); the domain
   weights take an exponentiated-gradient step ``log w <- log w + eta * score`` (step size ``eta``, DoReMi's 1),
   are renormalised, then smoothed towards uniform, ``w <- (1 - c) w + c / K`` (DoReMi's ``c = 1e-3``). The DRO
   proxy's loss is the per-token loss weighted by its domain's current weight (normalised over the batch).
3. The final mixture is the average of the domain weights over all updates.

DoReMi spends two proxies; CLIMB, RegMix and best random spend ``sum(search.rounds)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from climb.core.io import read_json, write_json

log = logging.getLogger(__name__)

STEP_SIZE = 1.0  # DoReMi's reweight_eta
SMOOTHING = 1e-3  # DoReMi's reweight_eps


@dataclass
class DomainWeights:
    """The Group DRO state: current weights, their running average, each domain's last score, updates so far."""

    weights: np.ndarray
    average: np.ndarray
    scores: np.ndarray
    updates: int = 0
    history: list[list[float]] = field(default_factory=list)

    @classmethod
    def uniform(cls, k: int) -> DomainWeights:
        if k < 1:
            raise ValueError("DoReMi needs at least one domain")
        w = np.full(k, 1.0 / k)
        return cls(w.copy(), np.zeros(k), np.zeros(k))

    def state(self) -> dict[str, Any]:
        return {"weights": self.weights.tolist(), "average": self.average.tolist(), "scores": self.scores.tolist(),
                "updates": self.updates, "history": self.history}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> DomainWeights:
        return cls(np.asarray(state["weights"], dtype=np.float64), np.asarray(state["average"], dtype=np.float64),
                   np.asarray(state["scores"], dtype=np.float64), int(state["updates"]), list(state["history"]))


def group_dro_update(state: DomainWeights, excess_sum: np.ndarray, tokens: np.ndarray, step_size: float = STEP_SIZE,
                     smoothing: float = SMOOTHING) -> DomainWeights:
    """One DoReMi update from a step's per-domain sums of clipped excess loss (``max(proxy - reference, 0)``
    summed over the domain's tokens) and token counts. Returns the new state (the input is not changed)."""
    excess_sum = np.asarray(excess_sum, dtype=np.float64)
    tokens = np.asarray(tokens, dtype=np.float64)
    if excess_sum.shape != state.weights.shape or tokens.shape != state.weights.shape:
        raise ValueError(f"expected {len(state.weights)} domains, got {excess_sum.shape} and {tokens.shape}")
    if np.any(excess_sum < 0) or np.any(tokens < 0):
        raise ValueError("excess losses must be clipped at 0 before summing, and token counts non-negative")
    seen = tokens > 0
    scores = np.where(seen, excess_sum / np.where(seen, tokens, 1.0), state.scores)
    logits = np.log(state.weights) + step_size * scores
    logits -= logits.max()
    w = np.exp(logits)
    w /= w.sum()
    k = len(w)
    w = (1.0 - smoothing) * w + smoothing / k
    updates = state.updates + 1
    average = (state.average * state.updates + w) / updates
    return DomainWeights(w, average, scores, updates, [*state.history, w.tolist()])


def write_reference_mixture(prior_path: str, out_path: str) -> dict:
    """The reference proxy's mixture: the natural one (the token shares of ``results/tokens/prior.json``)."""
    from climb.search.pipeline import read_prior, weights_to_json

    prior = read_prior(prior_path)
    data = {"weights": weights_to_json(prior, prior.share), "source": "doremi-reference", "mixture": "natural"}
    write_json(out_path, data)
    log.info("DoReMi reference mixture (natural): %s", data["weights"])
    return data


def write_doremi_mixture(training_path: str, reference_training_path: str, target: str, out_path: str,
                         prior_path: str | None = None) -> dict:
    """``final_mixture.json`` of strategy doremi (same format as the search's): the DRO proxy's average domain
    weights, with the two proxies it cost. With ``prior_path``, every super-cluster of the prior is listed (those
    without tokens, which DoReMi never saw, at 0), like the other strategies' files."""
    dro = read_json(training_path)
    reference = read_json(reference_training_path)
    info = dro.get("doremi")
    if not isinstance(info, dict) or "average" not in info:
        raise ValueError(f"{training_path}: not a DoReMi proxy (no `doremi` record); train it with the domain-weight hook")
    if dro.get("status") != "ok" or reference.get("status") != "ok":
        raise ValueError(f"DoReMi needs both proxies trained: reference {reference.get('status')}, DRO {dro.get('status')}")
    ids, avg = info["domains"], np.asarray(info["average"], dtype=np.float64)
    avg = np.where(avg < 0, 0.0, avg)
    avg = avg / avg.sum()
    weights = {str(i): round(float(w), 12) for i, w in zip(ids, avg, strict=True)}
    if prior_path is not None:
        from climb.search.pipeline import read_prior

        names = read_prior(prior_path).names
        unknown = sorted(set(weights) - set(names), key=int)
        if unknown:
            raise ValueError(f"{training_path}: super-clusters {unknown} are not in the prior {prior_path}")
        weights = {name: weights.get(name, 0.0) for name in names}
    result = {"strategy": "doremi", "target": target, "n_evaluated": 0, "proxies": 2,
              "proxy_tokens_trained": int(dro["tokens"]) + int(reference["tokens"]), "weights": weights, "predicted": None,
              "doremi": {"step_size": info["step_size"], "smoothing": info["smoothing"], "updates": info["updates"],
                         "final_weights": dict(zip(map(str, ids), info["weights"], strict=True)),
                         "reference_mixture": reference["weights"], "reference_final_loss": reference["final_loss"],
                         "dro_final_loss": dro["final_loss"]}}
    write_json(out_path, result)
    log.info("%s/doremi final mixture (average of %d Group DRO updates): %s", target, info["updates"], weights)
    return result
