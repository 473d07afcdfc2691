"""Mixture sampling on the simplex: the Dirichlet prior around token shares, random init, local proposals.

Every function takes an explicit ``numpy.random.Generator`` so that a seed fixes every draw; the pool is
sampled sequentially, so the first N mixtures of a pool of M > N are the pool of N (adding mixtures to the
pool, or enlarging a later round, never changes a mixture that was already trained).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np


def derive_rng(seed: int, *tags: str | int) -> np.random.Generator:
    """A generator seeded by the master seed plus stable tags (strings are hashed with crc32, not ``hash``)."""
    words = [int(seed)]
    for tag in tags:
        words.append(zlib.crc32(tag.encode()) if isinstance(tag, str) else int(tag))
    return np.random.default_rng(words)


@dataclass(frozen=True)
class SamplerSettings:
    """How mixtures are drawn (the `search` config section's sampling keys)."""

    init: str = "dirichlet"
    temperature: float = 0.5
    strengths: Sequence[float] = (0.1, 0.3, 1.0, 3.0)
    cap: float | None = 10.0
    max_epochs: float | None = None
    epoch_tokens: int | None = None
    min_weight: float = 0.01
    dedup_distance: float = 0.02
    max_tries: int = 1000

    def __post_init__(self) -> None:
        if self.init not in ("dirichlet", "random"):
            raise ValueError(f"search.init must be 'dirichlet' or 'random', got {self.init!r}")
        if not self.strengths or any(s <= 0 for s in self.strengths):
            raise ValueError(f"search.strengths must be a non-empty list of positive numbers, got {self.strengths!r}")
        if self.temperature < 0:
            raise ValueError(f"search.temperature must be >= 0, got {self.temperature}")
        if self.cap is not None and self.cap <= 0:
            raise ValueError(f"search.cap must be positive or null, got {self.cap}")
        if self.max_epochs is not None and self.max_epochs <= 0:
            raise ValueError(f"search.max_epochs must be positive or null, got {self.max_epochs}")
        if self.epoch_tokens is not None and self.epoch_tokens < 1:
            raise ValueError(f"search.epoch_tokens must be >= 1 or null, got {self.epoch_tokens}")


@dataclass
class Prior:
    """Token shares of the domains (super-clusters), in domain order."""

    names: list[str]
    share: np.ndarray
    tokens: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        share = np.asarray(self.share, dtype=np.float64)
        if share.ndim != 1 or len(share) != len(self.names) or len(share) < 2:
            raise ValueError(f"a prior needs one share per domain and at least 2 domains, got {len(share)} shares")
        if np.any(~np.isfinite(share)) or np.any(share < 0) or share.sum() <= 0:
            raise ValueError(f"prior shares must be finite, non-negative and not all zero: {share.tolist()}")
        self.share = share / share.sum()

    @property
    def n_domains(self) -> int:
        return len(self.names)

    @classmethod
    def uniform(cls, n: int) -> Prior:
        return cls([str(i) for i in range(n)], np.full(n, 1.0 / n))


def tempered(share: np.ndarray, temperature: float) -> np.ndarray:
    """``share ** temperature``, renormalised (0: uniform over domains with tokens, 1: the token shares)."""
    base = np.where(share > 0, np.power(np.maximum(share, 1e-300), temperature), 0.0)
    return base / base.sum()


def tv_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Total-variation distance (half the L1 distance) between rows of ``a`` and a vector or rows ``b``."""
    return 0.5 * np.abs(np.asarray(a) - np.asarray(b)).sum(axis=-1)


def project_caps(w: np.ndarray, caps: np.ndarray) -> np.ndarray | None:
    """Clip ``w`` (on the simplex) to ``caps``, giving the excess to the uncapped non-zero domains in proportion.

    Returns None when the non-zero domains cannot hold the mass under their caps.
    """
    w = w.copy()
    for _ in range(len(w) + 1):
        over = w > caps + 1e-12
        if not over.any():
            return w / w.sum()
        excess = float((w[over] - caps[over]).sum())
        w[over] = caps[over]
        free = (~over) & (w > 0) & (w < caps - 1e-12)
        if not free.any():
            return None
        w[free] += excess * w[free] / w[free].sum()
    return None


def finish(w: np.ndarray, min_weight: float, caps: np.ndarray | None) -> np.ndarray | None:
    """Zero weights below ``min_weight``, renormalise, apply caps; None if nothing valid is left."""
    w = np.where(w < min_weight, 0.0, w)
    total = w.sum()
    if total <= 0:
        return None
    w = w / total
    if caps is not None:
        w = project_caps(w, caps)
    return w


def epoch_caps(prior: Prior, settings: SamplerSettings) -> np.ndarray | None:
    """Per-domain weights that repeat a domain's tokens ``max_epochs`` times in ``epoch_tokens`` (at most 1)."""
    if settings.max_epochs is None or settings.epoch_tokens is None:
        return None
    if prior.tokens is None:
        raise ValueError("search.max_epochs needs token counts per super-cluster (`tokens` in prior.json)")
    caps = np.minimum(1.0, settings.max_epochs * np.asarray(prior.tokens, dtype=np.float64) / settings.epoch_tokens)
    if caps.sum() < 1.0:
        raise ValueError(
            f"search.max_epochs={settings.max_epochs}: {settings.epoch_tokens:,} tokens (search.epoch_tokens) need more "
            f"than {settings.max_epochs} epochs of the usable corpus "
            f"({int(np.sum(prior.tokens)):,} tokens); raise max_epochs or lower the budget")
    return caps


def caps_for(prior: Prior, settings: SamplerSettings) -> np.ndarray | None:
    """Per-domain upper bounds: ``cap`` times the tempered prior share (Dirichlet init only) and the epoch caps,
    whichever is lower (at most 1); None when uncapped."""
    caps = epoch_caps(prior, settings)
    if settings.cap is not None and settings.init != "random":
        share_caps = np.minimum(1.0, settings.cap * tempered(prior.share, settings.temperature))
        if share_caps.sum() < 1.0:
            raise ValueError(f"search.cap={settings.cap} leaves room for only {share_caps.sum():.3f} of the mass "
                             "under the prior; raise it")
        caps = share_caps if caps is None else np.minimum(caps, share_caps)
        if caps.sum() < 1.0:
            raise ValueError(f"search.cap={settings.cap} and search.max_epochs={settings.max_epochs} together leave "
                             f"room for only {caps.sum():.3f} of the mass; raise one of them")
    return caps


def draw_one(prior: Prior, settings: SamplerSettings, index: int, rng: np.random.Generator) -> np.ndarray | None:
    """One raw draw for pool position ``index`` (the strengths cycle with the index)."""
    d = prior.n_domains
    if settings.init == "random":
        w = rng.dirichlet(np.ones(d))
    else:
        base = tempered(prior.share, settings.temperature)
        strength = settings.strengths[index % len(settings.strengths)]
        alpha = np.maximum(strength * d * base, 1e-3)
        alpha = np.where(base > 0, alpha, 0.0)
        w = np.zeros(d)
        nz = alpha > 0
        w[nz] = rng.dirichlet(alpha[nz])
    if not np.all(np.isfinite(w)) or w.sum() <= 0:
        return None
    return finish(w, settings.min_weight, caps_for(prior, settings))


def sample_pool(prior: Prior, n: int, settings: SamplerSettings, seed: int) -> np.ndarray:
    """The first ``n`` mixtures of the seeded pool, (n, D), rows summing to 1, pairwise TV >= dedup_distance."""
    rng = derive_rng(seed, "pool", settings.init)
    out: list[np.ndarray] = []
    for i in range(n):
        for _ in range(settings.max_tries):
            w = draw_one(prior, settings, i, rng)
            if w is None:
                continue
            if out and tv_distance(np.stack(out), w).min() < settings.dedup_distance:
                continue
            out.append(w)
            break
        else:
            raise RuntimeError(
                f"could not draw pool mixture {i} in {settings.max_tries} tries: lower search.dedup_distance "
                f"({settings.dedup_distance}) or search.min_weight ({settings.min_weight}), or raise search.cap")
    return np.stack(out) if out else np.zeros((0, prior.n_domains))


def sample_prior_batch(prior: Prior, n: int, settings: SamplerSettings, rng: np.random.Generator) -> np.ndarray:
    """``n`` candidates from the prior (vectorised; no deduplication; invalid draws dropped)."""
    d = prior.n_domains
    if settings.init == "random":
        w = rng.dirichlet(np.ones(d), size=n)
    else:
        base = tempered(prior.share, settings.temperature)
        strengths = np.asarray(settings.strengths, dtype=np.float64)[np.arange(n) % len(settings.strengths)]
        alpha = np.maximum(strengths[:, None] * d * base[None, :], 1e-3)
        w = rng.gamma(alpha)
        w[:, base <= 0] = 0.0
    return _finish_batch(w, settings.min_weight, caps_for(prior, settings))


def sample_local_batch(centers: np.ndarray, n: int, concentration: float, settings: SamplerSettings,
                       caps: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """``n`` candidates from Dirichlets centred on ``centers`` rows: alpha = concentration * center + 0.01 * ...

    A small floor lets a domain that a centre leaves out come back in; ``concentration`` narrows the search.
    """
    k, d = centers.shape
    pick = rng.integers(0, k, size=n)
    alpha = concentration * centers[pick] + concentration * 0.02 / d
    w = rng.gamma(alpha)
    return _finish_batch(w, settings.min_weight, caps)


def _finish_batch(w: np.ndarray, min_weight: float, caps: np.ndarray | None) -> np.ndarray:
    w = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-300)
    w = np.where(w < min_weight, 0.0, w)
    keep = w.sum(axis=1) > 0
    w = w[keep] / w[keep].sum(axis=1, keepdims=True)
    if caps is None:
        return w
    rows = [project_caps(row, caps) for row in w] if np.any(w > caps + 1e-12) else list(w)
    rows = [r for r in rows if r is not None]
    return np.stack(rows) if rows else np.zeros((0, w.shape[1]))


def sampler_config(search: dict) -> dict:
    """The config keys a pool mixture depends on (its rule's params: nothing else reruns it). Here, not in
    climb.search.pipeline, so that parsing the workflow does not import LightGBM."""
    return {f.name: search[f.name] for f in fields(SamplerSettings) if f.name in search}  # fixed order
