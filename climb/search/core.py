"""The bi-level search as a library: round proposals, final mixtures, strategies, and a loop over any evaluator.

The DAG (rules/search.smk) calls the same step functions one round at a time on files; ``run_search`` calls
them in memory against any ``evaluator(weights (n, D)) -> observed objective (n,)`` (higher is better), which
is how the simulated-objective benchmark runs without training anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from climb.core.config import SEARCH_STRATEGIES
from climb.search.predictor import Predictor, PredictorSettings, fit_predictor
from climb.search.sampling import (
    Prior,
    SamplerSettings,
    caps_for,
    derive_rng,
    sample_local_batch,
    sample_pool,
    sample_prior_batch,
    tv_distance,
)

Evaluator = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SearchSettings:
    """Everything the search needs besides the prior and the evaluator (the `search` config section)."""

    rounds: Sequence[int] = (8, 4, 2)
    candidates: int = 20_000
    local_fraction: float = 0.5
    local_centers: int = 8
    local_concentration: float = 30.0
    local_growth: float = 2.0
    final: str = "argmax"
    final_topk: int = 10
    regmix_candidates: int = 1_000_000
    regmix_topk: int = 100
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    predictor: PredictorSettings = field(default_factory=PredictorSettings)

    def __post_init__(self) -> None:
        if not self.rounds or any(int(r) < 1 for r in self.rounds):
            raise ValueError(f"search.rounds must be a non-empty list of positive sizes, got {list(self.rounds)}")
        if self.rounds[0] < 2:
            raise ValueError(f"search.rounds[0] must be >= 2 (the first predictor needs two points), got {self.rounds[0]}")
        if self.final not in ("argmax", "topk_mean"):
            raise ValueError(f"search.final must be 'argmax' or 'topk_mean', got {self.final!r}")
        if self.regmix_candidates < 1 or not 1 <= self.regmix_topk <= self.regmix_candidates:
            raise ValueError(f"search.regmix_topk must be in [1, search.regmix_candidates], got "
                             f"{self.regmix_topk} of {self.regmix_candidates}")
        if not 0 <= self.local_fraction <= 1:
            raise ValueError(f"search.local_fraction must be in [0, 1], got {self.local_fraction}")

    @property
    def budget(self) -> int:
        return int(sum(self.rounds))


def pool_size(settings: SearchSettings, strategies: Sequence[str]) -> int:
    """Pool mixtures needed: round 1 for climb, the whole budget for the regmix / random baselines."""
    if any(s in ("regmix", "random") for s in strategies):
        return settings.budget
    return int(settings.rounds[0])


def candidates(prior: Prior, settings: SearchSettings, evaluated: np.ndarray, scores: np.ndarray,
               round_index: int, rng: np.random.Generator, local: bool = True) -> np.ndarray:
    """Candidate mixtures for a round (``round_index`` >= 1 is the 0-based index of the round being proposed).

    A share (``1 - local_fraction``) comes from the prior over the whole simplex; the rest from Dirichlets
    centred on the best evaluated mixtures, whose concentration grows each round: the search space narrows
    around what has worked, while global draws keep the rest of the simplex in play.
    """
    n_total = int(settings.candidates)
    n_local = int(round(n_total * settings.local_fraction)) if local and len(scores) else 0
    parts = [sample_prior_batch(prior, n_total - n_local, settings.sampler, rng)]
    if n_local:
        order = np.argsort(-scores, kind="stable")[: settings.local_centers]
        concentration = settings.local_concentration * settings.local_growth ** max(0, round_index - 1)
        parts.append(sample_local_batch(evaluated[order], n_local, concentration, settings.sampler,
                                        caps_for(prior, settings.sampler), rng))
    return np.concatenate(parts, axis=0)


def linear_trend(evaluated: np.ndarray, scores: np.ndarray, ridge: float = 1e-2) -> np.ndarray:
    """Per-domain coefficients of a ridge fit score ~ weights (no intercept: weights sum to 1, so coefficient i is
    the fitted score of domain i alone). Breaks the tree model's ties: whole regions of the simplex share the best
    leaf, and within one the trend says which way the evaluated mixtures improve."""
    x = np.asarray(evaluated, dtype=np.float64)
    y = np.asarray(scores, dtype=np.float64)
    return np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ (y - y.mean())) + y.mean()


def ranked(cands: np.ndarray, predicted: np.ndarray, anchor: np.ndarray | None,
           trend: np.ndarray | None = None) -> np.ndarray:
    """Candidate order: best predicted first; ties (a tree model is piecewise constant, so whole regions tie)
    go to the candidate the linear ``trend`` rates higher, then to the one closest to ``anchor``, the best
    evaluated mixture."""
    if anchor is None:
        return np.argsort(-predicted, kind="stable")
    keys = [tv_distance(cands, anchor)]
    if trend is not None:
        keys.append(-np.round(cands @ trend, 9))
    return np.lexsort((*keys, -np.round(predicted, 12)))


def select_distinct(cands: np.ndarray, predicted: np.ndarray, n: int, evaluated: np.ndarray,
                    min_distance: float, anchor: np.ndarray | None = None, trend: np.ndarray | None = None) -> np.ndarray:
    """The ``n`` best-predicted candidates, each at TV distance >= ``min_distance`` from everything evaluated and
    from each other (greedy in predicted order, ties broken by ``trend``, then towards ``anchor``)."""
    order = ranked(cands, predicted, anchor, trend)
    chosen: list[np.ndarray] = []
    taken = evaluated.copy() if len(evaluated) else np.zeros((0, cands.shape[1]))
    for idx in order:
        w = cands[idx]
        if len(taken) and tv_distance(taken, w).min() < min_distance:
            continue
        chosen.append(w)
        taken = np.vstack([taken, w[None, :]])
        if len(chosen) == n:
            break
    if len(chosen) < n:
        raise RuntimeError(
            f"only {len(chosen)} of {n} candidates are at least {min_distance} (TV) from the evaluated mixtures and "
            f"each other: raise search.candidates or lower search.dedup_distance")
    return np.stack(chosen)


def propose_round(prior: Prior, settings: SearchSettings, predictor: Predictor, evaluated: np.ndarray,
                  scores: np.ndarray, round_index: int, seed: int, tag: str = "",
                  avoid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Round ``round_index`` (0-based, >= 1): its mixtures and their predicted scores.

    ``avoid``: mixtures without a score (their proxy failed); proposals keep the dedup distance from them too.
    """
    rng = derive_rng(seed, "propose", tag, round_index)
    cands = candidates(prior, settings, evaluated, scores, round_index, rng)
    predicted = predictor.predict(cands)
    taken = evaluated if avoid is None or not len(avoid) else np.concatenate([evaluated, avoid])
    chosen = select_distinct(cands, predicted, int(settings.rounds[round_index]), taken,
                             settings.sampler.dedup_distance, evaluated[int(np.argmax(scores))],
                             linear_trend(evaluated, scores))
    return chosen, predictor.predict(chosen)


def final_mixture(prior: Prior, settings: SearchSettings, predictor: Predictor, evaluated: np.ndarray,
                  scores: np.ndarray, seed: int, tag: str = "", local: bool = True) -> tuple[np.ndarray, float]:
    """The predicted-best mixture (argmax, or the mean of the top-k predictions) and its predicted score.

    Candidates: fresh draws (global, plus local around the best evaluated when ``local``) and the evaluated
    mixtures themselves.
    """
    rng = derive_rng(seed, "final", tag)
    cands = candidates(prior, settings, evaluated, scores, len(settings.rounds), rng, local=local)
    cands = np.concatenate([cands, evaluated], axis=0)
    predicted = predictor.predict(cands)
    # Ties go to the best evaluated mixture, not along the trend: proposals explore, the final stays where verified.
    order = ranked(cands, predicted, evaluated[int(np.argmax(scores))])
    if settings.final == "argmax":
        w = cands[order[0]]
    else:
        top = order[: settings.final_topk]
        w = cands[top].mean(axis=0)
        w = w / w.sum()
    return w, float(predictor.predict(w[None, :])[0])


REGMIX_CHUNK = 100_000


def regmix_candidates(prior: Prior, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws of RegMix's simulation prior: Dirichlet(alpha = the token shares), strength 1, no temperature,
    no caps (RegMix's regression notebook, ``np.random.dirichlet(prior_dist * 1, n)``). Domains without tokens
    stay at 0; the rare row whose gammas all underflow (tiny alphas) is redrawn."""
    share = prior.share
    live = np.flatnonzero(share > 0)
    out = np.zeros((n, prior.n_domains))
    filled = 0
    while filled < n:
        draw = rng.dirichlet(share[live], size=n - filled)
        ok = np.all(np.isfinite(draw), axis=1) & (np.abs(draw.sum(axis=1) - 1.0) < 1e-6)
        draw = draw[ok]
        out[filled:filled + len(draw), live] = draw
        filled += len(draw)
    return out


def regmix_final(prior: Prior, settings: SearchSettings, predictor: Predictor, seed: int, tag: str = "regmix"
                 ) -> tuple[np.ndarray, float, dict]:
    """RegMix's final mixture (Liu et al. 2024, arXiv 2407.01492, section 3 and its ``regression_fitting``
    notebook): simulate ``settings.regmix_candidates`` mixtures from the token-distribution prior (RegMix: 1M),
    predict each with the predictor fitted on the pool proxies, and average the ``settings.regmix_topk``
    best-predicted ones (RegMix: top 100). Never an evaluated mixture: the evaluated ones are not candidates.

    Candidates are drawn and predicted in chunks of ``REGMIX_CHUNK`` (the top k is kept across chunks), so the
    result is the same as one batch and memory stays bounded. Returns (weights, predicted score of the mean,
    details for the output file)."""
    rng = derive_rng(seed, "regmix-simulation", tag)
    k = int(settings.regmix_topk)
    best_x = np.zeros((0, prior.n_domains))
    best_y = np.zeros(0)
    best_i = np.zeros(0, dtype=np.int64)
    done = 0
    while done < settings.regmix_candidates:
        m = min(REGMIX_CHUNK, int(settings.regmix_candidates) - done)
        x = regmix_candidates(prior, m, rng)
        y = np.asarray(predictor.predict(x), dtype=np.float64)
        best_x = np.concatenate([best_x, x])
        best_y = np.concatenate([best_y, y])
        best_i = np.concatenate([best_i, np.arange(done, done + m)])
        order = np.lexsort((best_i, -best_y))[:k]  # highest predicted first, ties to the earlier draw
        best_x, best_y, best_i = best_x[order], best_y[order], best_i[order]
        done += m
    w = best_x.mean(axis=0)
    w = w / w.sum()
    details = {"candidates": int(settings.regmix_candidates), "topk": k,
               "topk_predicted": [float(best_y.min()), float(best_y.max())]}
    return w, float(predictor.predict(w[None, :])[0]), details


@dataclass
class SearchResult:
    strategy: str
    weights: np.ndarray
    predicted: float | None
    evaluated: np.ndarray
    scores: np.ndarray
    round_of: np.ndarray
    predictors: list[Predictor]


def run_search(evaluator: Evaluator, prior: Prior, settings: SearchSettings, strategy: str = "climb",
               seed: int = 0, pool: np.ndarray | None = None, cross_validate: bool = False) -> SearchResult:
    """Run one strategy end to end against ``evaluator`` (observed objective, higher is better).

    ``pool``: pre-sampled pool mixtures (the first ``pool_size`` rows are used); sampled from ``prior`` when
    None, exactly as the DAG's pool is. Budgets: climb and regmix/random evaluate ``sum(rounds)`` mixtures;
    natural and uniform evaluate nothing.
    """
    if strategy not in SEARCH_STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {SEARCH_STRATEGIES}")
    d = prior.n_domains
    if strategy == "natural":
        return SearchResult(strategy, prior.share.copy(), None, np.zeros((0, d)), np.zeros(0), np.zeros(0, int), [])
    if strategy == "uniform":
        return SearchResult(strategy, np.full(d, 1.0 / d), None, np.zeros((0, d)), np.zeros(0), np.zeros(0, int), [])

    n_pool = settings.budget if strategy in ("regmix", "random") else int(settings.rounds[0])
    if pool is None:
        pool = sample_pool(prior, n_pool, settings.sampler, seed)
    if len(pool) < n_pool:
        raise ValueError(f"pool has {len(pool)} mixtures, strategy {strategy} needs {n_pool}")
    evaluated = np.asarray(pool[:n_pool], dtype=np.float64)
    scores = np.asarray(evaluator(evaluated), dtype=np.float64)
    round_of = np.zeros(n_pool, dtype=int)

    if strategy == "random":
        best = int(np.argmax(scores))
        return SearchResult(strategy, evaluated[best], float(scores[best]), evaluated, scores, round_of, [])

    # RegMix's regressor is LightGBM whatever search.predictor.kind says (the paper's and its notebook's choice)
    predictor_settings = replace(settings.predictor, kind="trees") if strategy == "regmix" else settings.predictor
    predictors = [fit_predictor(evaluated, scores, predictor_settings, seed, cross_validate)]
    if strategy == "climb":
        for r in range(1, len(settings.rounds)):
            chosen, _ = propose_round(prior, settings, predictors[-1], evaluated, scores, r, seed)
            evaluated = np.concatenate([evaluated, chosen])
            scores = np.concatenate([scores, np.asarray(evaluator(chosen), dtype=np.float64)])
            round_of = np.concatenate([round_of, np.full(len(chosen), r)])
            predictors.append(fit_predictor(evaluated, scores, settings.predictor, seed + r, cross_validate))
    if strategy == "regmix":  # one predictor over the pool, then RegMix's simulation and top-k mean
        w, predicted, _ = regmix_final(prior, settings, predictors[-1], seed)
    else:
        w, predicted = final_mixture(prior, settings, predictors[-1], evaluated, scores, seed, strategy)
    return SearchResult(strategy, w, predicted, evaluated, scores, round_of, predictors)
