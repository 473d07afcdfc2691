"""File-level search steps, one per Snakemake rule (scripts/search_*.py call these).

Files:
- ``results/tokens/prior.json`` (read): ``{"prior": {"<super-cluster id>": share}, "tokens": {...}}``.
- ``search/.../mix{i}/weights.json`` (written): ``{"weights": {"<super-cluster id>": w}}`` summing to 1, plus
  metadata (how it was drawn or proposed).
- ``search/.../mix{i}/scores/{target}.json`` (read): a scalar ``objective``, higher is better; or ``objective: null``
  with a ``failed`` record when the proxy diverged (``proxy.on_nonfinite_loss: skip``). Every step leaves failed
  mixtures out, counts them (``n_failed``, ``failed`` in its output, a warning in its log), keeps proposals away
  from them, and fails when fewer than 2 (1 for a final mixture) succeeded.
- ``search/{target}/round{r}/predictor.txt`` (LightGBM text model, fitted on rounds 1..r) and ``predictor.json``
  (cross-validated Spearman, rows, boosting rounds, best mixture so far; the round's signal against the replicates'
  noise and the predictor's skill, climb.search.signal).
- ``search/pool/replicate{j}/weights.json``: the natural mixture, trained with seed j, and
  ``search/pool/contrast{j}/weights.json``: the pool's first mixture, trained with seed j (j >= 1; the noise floor).
- ``search/{target}/round{r}/proposals.json``: round r's mixtures (r >= 2), split into ``mix{i}/weights.json``.
- ``search/{target}/{strategy}/final_mixture.json``: weights summing to 1 and the predicted score; for climb also
  the verdict (``supported`` and its reasons).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from climb.core.io import read_json, write_json
from climb.search.core import SearchSettings, final_mixture, propose_round, regmix_final
from climb.search.mixture_file import read_mixture_weights
from climb.search.predictor import Predictor, PredictorSettings, fit_predictor
from climb.search.sampling import Prior, SamplerSettings, sample_pool, sampler_config
from climb.search.signal import (
    VERDICT_POLICIES,
    UnsupportedMixtureError,
    concentration,
    describe,
    low_signal,
    noise_floor,
    round_signal,
    spearman,
    verdict,
)

log = logging.getLogger("climb.search")

SEARCH_KEYS = {f.name for f in fields(SearchSettings)} - {"sampler", "predictor"}
PREDICTOR_KEYS = {f.name for f in fields(PredictorSettings)}


def settings_from_config(search: dict[str, Any]) -> SearchSettings:
    """SearchSettings from the `search` config section (keys it does not know are ignored here)."""
    sampler = SamplerSettings(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in sampler_config(search).items()})
    predictor = PredictorSettings(**{k: v for k, v in search.get("predictor", {}).items() if k in PREDICTOR_KEYS})
    top = {k: (tuple(v) if isinstance(v, list) else v) for k, v in search.items() if k in SEARCH_KEYS}
    return SearchSettings(sampler=sampler, predictor=predictor, **top)


def read_prior(path: str | Path) -> Prior:
    """The token-share prior: ``{"prior": {id: share}}`` (or ``{"tokens": {id: n}}``), ids sorted numerically."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with a `prior` (or `tokens`) mapping")
    for key in ("prior", "share", "tokens"):
        if isinstance(data.get(key), dict) and data[key]:
            mapping = data[key]
            break
    else:
        raise ValueError(f"{path}: no non-empty `prior` (super-cluster id -> token share) or `tokens` mapping")
    try:
        ids = sorted(mapping, key=int)
    except ValueError as err:
        raise ValueError(f"{path}: super-cluster ids must be integers, got {sorted(mapping)}") from err
    values = []
    for i in ids:
        v = mapping[i]
        if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{path}: share of super-cluster {i} is {v!r}; expected a finite number >= 0")
        values.append(float(v))
    tokens = data.get("tokens")
    counts = None
    if isinstance(tokens, dict) and set(tokens) == set(ids):
        counts = np.array([float(tokens[i]) for i in ids])
    try:
        return Prior(ids, np.array(values), counts)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def weights_to_json(prior: Prior, w: np.ndarray) -> dict[str, float]:
    w = np.asarray(w, dtype=np.float64)
    w = np.where(w < 0, 0.0, w)
    w = w / w.sum()
    return {name: round(float(x), 12) for name, x in zip(prior.names, w, strict=True)}


def read_weights(path: str | Path, prior: Prior) -> np.ndarray:
    """A mixture file as a vector in the prior's domain order (absent domains are 0; unknown ids are errors)."""
    weights = read_mixture_weights(path, [int(name) for name in prior.names])
    w = np.array([weights[int(name)] for name in prior.names], dtype=np.float64)
    return w / w.sum()


def read_objective(path: str | Path) -> float | None:
    """The finite ``objective`` of a score file; None for a mixture whose proxy failed (a ``failed`` record)."""
    data = read_json(path)
    if isinstance(data, dict) and data.get("failed") and data.get("objective") is None:
        return None
    value = data.get("objective") if isinstance(data, dict) else None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{path}: expected a finite scalar `objective` (higher is better), got {value!r}")
    return float(value)


@dataclass
class History:
    """The evaluated mixtures of a search step: the scored ones (``x``, ``y``) and the failed ones, left out."""

    x: np.ndarray
    y: np.ndarray
    mixtures: list[str]  # weights.json of each scored row
    failed: list[str]  # mixture folders whose proxy failed
    failed_x: np.ndarray

    def summary(self) -> dict[str, Any]:
        return {"n_failed": len(self.failed), "failed": self.failed}


def read_history(prior: Prior, weights_paths: Sequence[str], score_paths: Sequence[str], minimum: int = 2,
                 needs: str = "the predictor") -> History:
    """Weights and objectives of the evaluated mixtures; failed ones are set aside (at least ``minimum`` must remain)."""
    if len(weights_paths) != len(score_paths):
        raise ValueError(f"{len(weights_paths)} mixtures but {len(score_paths)} score files")
    for w, s in zip(weights_paths, score_paths, strict=True):
        if Path(w).parent != Path(s).parent.parent:
            raise ValueError(f"score file {s} does not belong to mixture {w}")
    x = np.stack([read_weights(p, prior) for p in weights_paths]) if len(weights_paths) else \
        np.zeros((0, prior.n_domains))
    y = [read_objective(p) for p in score_paths]
    ok = [i for i, v in enumerate(y) if v is not None]
    bad = [i for i, v in enumerate(y) if v is None]
    failed = [str(Path(weights_paths[i]).parent) for i in bad]
    if failed:
        log.warning("%d of %d mixtures failed (their proxy diverged) and are left out: %s", len(failed), len(y),
                    ", ".join(failed))
    if len(ok) < minimum:
        raise ValueError(
            f"only {len(ok)} of {len(y)} mixtures have a score ({len(failed)} failed: {', '.join(failed) or 'none'}); "
            f"{needs} needs at least {minimum}. Each failed proxy's training.json says at which step its loss "
            "became NaN/inf: lower proxy.lr, raise proxy.warmup_fraction or proxy.grad_clip, and rerun")
    return History(x[ok], np.array([y[i] for i in ok], dtype=np.float64), [str(weights_paths[i]) for i in ok],
                   failed, x[bad])


def sample_pool_mixture(prior_path: str, index: int, search: dict[str, Any], seed: int, out_path: str) -> None:
    """Pool mixture ``index``: the index-th draw of the seeded, sequential pool (so earlier ones never change)."""
    prior = read_prior(prior_path)
    sampler = settings_from_config(search).sampler
    w = sample_pool(prior, index + 1, sampler, seed)[index]
    write_json(out_path, {"weights": weights_to_json(prior, w), "source": "pool", "index": index,
                          "init": sampler.init, "strength": None if sampler.init == "random"
                          else sampler.strengths[index % len(sampler.strengths)]})
    log.info("pool mixture %d: %s", index, weights_to_json(prior, w))


def read_replicates(score_paths: Sequence[str], contrast_paths: Sequence[str] = ()) -> dict[str, Any]:
    """The noise floor from the replicates' score files and the contrast mixture's under the same seeds."""
    return noise_floor([read_objective(p) for p in score_paths], [read_objective(p) for p in contrast_paths])


def round_measurements(h: History, round_number: int) -> tuple[np.ndarray, list[float | None]]:
    """Objectives of the mixtures round ``round_number`` evaluated, and what they were predicted to score."""
    source = "pool" if round_number == 1 else f"round{round_number}"
    mixtures = [read_json(w) for w in h.mixtures]
    rows = [(y, m.get("predicted")) for m, y in zip(mixtures, h.y, strict=True) if m.get("source") == source]
    return np.array([y for y, _ in rows]), [p for _, p in rows]


def fit_round_predictor(prior_path: str, weights_paths: Sequence[str], score_paths: Sequence[str],
                        search: dict[str, Any], seed: int, round_number: int, model_path: str,
                        summary_path: str, replicate_paths: Sequence[str] = (),
                        contrast_paths: Sequence[str] = ()) -> dict:
    """Fit the predictor on everything evaluated in rounds 1..r for one target; save model + summary (with the
    round's signal against the replicates' noise, and the predictor's skill)."""
    prior = read_prior(prior_path)
    settings = settings_from_config(search)
    h = read_history(prior, weights_paths, score_paths, needs=f"the round {round_number} predictor")
    x, y = h.x, h.y
    predictor = fit_predictor(x, y, settings.predictor, seed + round_number - 1, cross_validate=True)
    predictor.save(model_path)
    best = int(np.argmax(y))
    noise = read_replicates(replicate_paths, contrast_paths)
    measured, predicted = round_measurements(h, round_number)
    realized = spearman(predicted, measured) if round_number > 1 and None not in predicted else None
    summary = {**predictor.summary(), "round": round_number, **h.summary(),
               "best_evaluated": {"mixture": h.mixtures[best], "objective": float(y[best]),
                                  "weights": weights_to_json(prior, x[best])},
               "noise": noise, "signal": round_signal(measured, noise), "fitted_signal": round_signal(y, noise),
               "skill": {"out_of_fold_spearman": predictor.cv_spearman, "realized_spearman": realized}}
    write_json(summary_path, summary)
    log.info("round %d predictor on %d mixtures (%d failed, left out): cv Spearman %s, %d boosting rounds; "
             "round SNR %s (%s noise %s over %d replicates), predictions vs measured Spearman %s", round_number, len(y),
             len(h.failed), predictor.cv_spearman, predictor.rounds, summary["signal"]["snr"], noise["kind"], noise["std"],
             noise["n_replicates"], realized)
    return summary


def propose(prior_path: str, model_path: str, weights_paths: Sequence[str], score_paths: Sequence[str],
            search: dict[str, Any], seed: int, round_number: int, out_path: str, summary_path: str | None = None,
            signal: dict[str, Any] | None = None, target: str = "") -> None:
    """Round r's mixtures (r >= 2) from round r-1's predictor: best predicted, distinct from all evaluated. Before
    round 2, round 1's signal is checked (``signal``: search.signal) against its summary."""
    prior = read_prior(prior_path)
    settings = settings_from_config(search)
    if not 2 <= round_number <= len(settings.rounds):
        raise ValueError(f"round {round_number} is not a proposal round of search.rounds={list(settings.rounds)}")
    if round_number == 2 and summary_path is not None and signal is not None:
        low_signal(read_json(summary_path), signal["min_snr"], signal["on_low_signal"], target)
    h = read_history(prior, weights_paths, score_paths, needs=f"the round {round_number} proposals")
    x, y = h.x, h.y
    booster = Predictor.load_booster(model_path)
    chosen, predicted = propose_round(prior, settings, booster, x, y, round_number - 1, seed, avoid=h.failed_x)
    write_json(out_path, {"round": round_number, "predictor": str(model_path), "n_evaluated": len(y),
                          **h.summary(), "mixtures": [{"weights": weights_to_json(prior, w), "predicted": float(p)}
                                       for w, p in zip(chosen, predicted, strict=True)]})
    log.info("round %d: %d mixtures proposed from %d scored (%d failed, left out), predicted %.5f .. %.5f",
             round_number, len(chosen), len(y), len(h.failed), predicted.min(), predicted.max())


def split_proposal(proposals_path: str, index: int, out_path: str) -> None:
    data = read_json(proposals_path)
    mixtures = data["mixtures"]
    if not 0 <= index < len(mixtures):
        raise ValueError(f"{proposals_path} has {len(mixtures)} mixtures; there is no mix{index}")
    m = mixtures[index]
    write_json(out_path, {"weights": m["weights"], "predicted": m["predicted"], "source": f"round{data['round']}",
                          "index": index})


def fit_regmix_predictor(prior_path: str, weights_paths: Sequence[str], score_paths: Sequence[str],
                         search: dict[str, Any], seed: int, model_path: str, summary_path: str) -> dict:
    """RegMix: one LightGBM predictor on the first sum(rounds) pool mixtures (LightGBM whatever
    search.predictor.kind says: RegMix's regressor)."""
    search = {**search, "predictor": {**search.get("predictor", {}), "kind": "trees"}}
    return fit_round_predictor(prior_path, weights_paths, score_paths, search, seed, 1, model_path, summary_path)


def final_verdict(prior: Prior, booster: Any, w: np.ndarray, summary: dict[str, Any],
                  thresholds: dict[str, Any]) -> dict[str, Any]:
    """The climb final mixture's verdict: last round's SNR, final predictor's skill, predicted gain over the natural
    mixture in noise units, and its concentration on one super-cluster."""
    noise = summary.get("noise") or {}
    predicted = booster.predict(np.stack([w, prior.share]))
    gain = float((predicted[0] - predicted[1]) / noise["std"]) if noise.get("std") else None
    token_share = prior.share
    ratio, top = concentration(w, token_share)
    result = verdict((summary.get("fitted_signal") or {}).get("snr"),
                     (summary.get("skill") or {}).get("out_of_fold_spearman"), gain, ratio, thresholds)
    result.update({"round": summary.get("round"), "noise": noise, "signal": summary.get("fitted_signal"),
                   "skill": summary.get("skill"), "predicted_natural": float(predicted[1]),
                   "largest": {"super_cluster": prior.names[top], "weight": float(w[top]),
                               "token_share": float(token_share[top])}})
    return result


def write_final_mixture(strategy: str, target: str, prior_path: str, search: dict[str, Any], seed: int,
                        out_path: str, model_path: str | None = None, weights_paths: Sequence[str] = (),
                        score_paths: Sequence[str] = (), summary_path: str | None = None) -> dict:
    """The final mixture of one strategy for one target; climb's carries its verdict (``summary_path``: the last
    round's predictor.json) and, when unsupported, follows ``search.signal.on_unsupported``."""
    prior = read_prior(prior_path)
    settings = settings_from_config(search)
    result: dict[str, Any] = {"strategy": strategy, "target": target, "n_evaluated": len(weights_paths)}
    if strategy == "natural":
        w, predicted = prior.share, None
    elif strategy == "uniform":
        w = np.where(prior.share > 0, 1.0, 0.0)
        w, predicted = w / w.sum(), None
    else:
        h = read_history(prior, weights_paths, score_paths, minimum=1, needs=f"the {strategy} final mixture")
        x, y = h.x, h.y
        result.update(h.summary())
        best = int(np.argmax(y))
        result["best_evaluated"] = {"mixture": h.mixtures[best], "objective": float(y[best])}
        if strategy == "random":
            w, predicted = x[best], None
            result["observed"] = float(y[best])
        elif strategy in ("climb", "regmix"):
            if model_path is None:
                raise ValueError(f"strategy {strategy} needs a predictor")
            booster = Predictor.load_booster(model_path)
            result["predictor"] = str(model_path)
            if strategy == "regmix":  # RegMix's simulation: mean of the top-k of 1M prior draws, never an evaluated one
                w, predicted, details = regmix_final(prior, settings, booster, seed)
                result["final"] = "regmix_topk_mean"
                result["regmix"] = details
            else:
                w, predicted = final_mixture(prior, settings, booster, x, y, seed, strategy)
                result["final"] = settings.final
            if strategy == "climb" and summary_path is not None:
                w, predicted = _apply_verdict(result, prior, booster, w, predicted, read_json(summary_path),
                                              search["signal"], target)
        else:
            raise ValueError(f"unknown strategy {strategy!r}")
    result["weights"] = weights_to_json(prior, w)
    result["predicted"] = predicted
    write_json(out_path, result)
    log.info("%s/%s final mixture: %s (predicted %s)", target, strategy, result["weights"], predicted)
    return result


def _apply_verdict(result: dict[str, Any], prior: Prior, booster: Any, w: np.ndarray, predicted: float,
                   summary: dict[str, Any], signal: dict[str, Any], target: str) -> tuple[np.ndarray, float]:
    """Record the verdict; an unsupported mixture is warned about, replaced by the natural mixture, or fails."""
    policy = signal["on_unsupported"]
    if policy not in VERDICT_POLICIES:
        raise ValueError(f"search.signal.on_unsupported must be one of {VERDICT_POLICIES}, got {policy!r}")
    judged = final_verdict(prior, booster, w, summary, signal)
    result["verdict"] = judged
    result["supported"] = judged["supported"]
    if judged["supported"]:
        log.info("target %s: the climb mixture is supported\n%s", target, describe(judged))
        return w, predicted
    message = f"target {target}: the climb mixture is not supported by the search's measurements\n{describe(judged)}"
    if policy == "fail":
        raise UnsupportedMixtureError(message + "\n(search.signal.on_unsupported: fail)")
    if policy == "warn":
        log.warning("%s\nkept anyway (search.signal.on_unsupported: warn)", message)
        return w, predicted
    log.warning("%s\nthe natural mixture (the token prior) is used instead (search.signal.on_unsupported: prior)",
                message)
    result["searched"] = {"weights": weights_to_json(prior, w), "predicted": predicted}
    result["fallback"] = "prior"
    return prior.share, float(booster.predict(prior.share[None, :])[0])


def write_contrast(pool_path: str, index: int, out_path: str) -> None:
    """Contrast ``index`` (>= 1) of the noise floor: the pool's first mixture (``pool_path``), trained with replicate
    ``index``'s seed, so that it pairs with that replicate (contrast 0 is the pool mixture itself)."""
    if index < 1:
        raise ValueError(f"{out_path}: contrast 0 is {pool_path} itself; contrasts are numbered from 1")
    write_json(out_path, {"weights": read_json(pool_path)["weights"], "source": "contrast", "index": index})
    log.info("noise-floor contrast %d: the weights of %s", index, pool_path)


def write_replicate(prior_path: str, index: int, out_path: str) -> None:
    """Noise-floor replicate ``index``: the natural mixture (token prior), trained with its own seed."""
    prior = read_prior(prior_path)
    write_json(out_path, {"weights": weights_to_json(prior, prior.share), "source": "replicate", "index": index})
