"""Simulated objectives for benchmarking the search without training anything.

1. ``planted_objective``: f(w) = -sum_d a_d (w_d - w*_d)^2 - b * sum_{d<e} c_de w_d w_e over D domains, w* from
   a sparse Dirichlet, a and c random positive (seeded).
2. ``mixing_law_objective``: per RegMix target, L(w) = c + k * exp(sum_j t_j w_j) (the data-mixing law of
   Ye et al.) fitted by least squares to the RegMix mixtures and losses; the objective is -L, the
   noise its residual standard deviation. On the simplex k and a constant shift of t are the same thing,
   so k is fixed at 1 and t carries the scale.

Both return an ``Objective``: the noise-free function, the noise level, the prior to search from, and the
optimum over the simplex (for regret).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, minimize

from climb.search.sampling import Prior


@dataclass
class Objective:
    name: str
    f: callable  # (n, D) -> (n,), noise-free, higher is better
    noise: float
    prior: Prior
    optimum: float

    def evaluator(self, rng: np.random.Generator):
        """An evaluator that adds Gaussian noise of std ``noise`` to every evaluation."""

        def evaluate(w: np.ndarray) -> np.ndarray:
            y = self.f(np.asarray(w, dtype=np.float64))
            return y + rng.normal(0.0, self.noise, size=len(y))

        return evaluate

    def regret(self, w: np.ndarray) -> float:
        return float(self.optimum - self.f(np.asarray(w, dtype=np.float64)[None, :])[0])


def maximise_on_simplex(f, d: int, starts: list[np.ndarray]) -> float:
    """Best value of ``f`` over the simplex from several SLSQP starts (plus the vertices)."""
    vertices = np.eye(d)
    best = float(np.max(f(vertices)))
    cons = [{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}]
    for x0 in starts:
        res = minimize(lambda w: -f(w[None, :])[0], x0, method="SLSQP", bounds=[(0.0, 1.0)] * d,
                       constraints=cons, options={"maxiter": 500, "ftol": 1e-12})
        w = np.clip(res.x, 0, None)
        w = w / w.sum()
        best = max(best, float(f(w[None, :])[0]))
    return best


def planted_objective(seed: int, n_domains: int = 21, sparsity: float = 0.3, interaction: float = 0.5,
                      noise_fraction: float = 0.1) -> Objective:
    """The planted quadratic; noise std is ``noise_fraction`` times the spread of f over the prior's draws."""
    rng = np.random.default_rng([seed, 2026])
    target = rng.dirichlet(np.full(n_domains, sparsity))
    a = rng.uniform(0.5, 1.5, size=n_domains)
    c = rng.uniform(0.0, 1.0, size=(n_domains, n_domains))
    c = np.triu(c, 1)
    share = rng.dirichlet(np.full(n_domains, 2.0))  # token shares, unrelated to the target

    def f(w: np.ndarray) -> np.ndarray:
        w = np.atleast_2d(w)
        return -(a * (w - target) ** 2).sum(axis=1) - interaction * np.einsum("nd,de,ne->n", w, c, w)

    prior = Prior([f"d{i:02d}" for i in range(n_domains)], share)
    spread = float(np.std(f(rng.dirichlet(share * n_domains, size=2000))))
    starts = [target, share, np.full(n_domains, 1.0 / n_domains)] + list(rng.dirichlet(np.ones(n_domains), size=8))
    optimum = maximise_on_simplex(f, n_domains, starts)
    return Objective(f"planted-{seed}", f, noise_fraction * spread, prior, optimum)


def load_regmix(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All RegMix rows (train + test): mixture weights (17 domains) and validation losses, joined on ``index``."""
    folder = Path(folder)
    mixes, losses = [], []
    for split in ("train", "test"):
        m = pd.read_csv(folder / f"{split}_mixture_1m.csv")
        loss = pd.read_csv(folder / f"{split}_pile_loss_1m.csv")
        for frame, name in ((m, "mixture"), (loss, "pile_loss")):
            if "index" not in frame.columns:
                raise ValueError(f"{folder}/{split}_{name}_1m.csv has no `index` column")
        joined = m.merge(loss, on="index", how="inner", validate="1:1")
        if len(joined) != len(m) or len(joined) != len(loss):
            raise ValueError(f"{split}: {len(m)} mixtures and {len(loss)} loss rows do not join 1:1 on `index`")
        mixes.append(joined[[c for c in m.columns if c != "index"]])
        losses.append(joined[[c for c in loss.columns if c != "index"]])
    return pd.concat(mixes, ignore_index=True), pd.concat(losses, ignore_index=True)


def fit_mixing_law(w: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, float]:
    """Least-squares fit of y = c + exp(t . w); returns (c, t, residual std)."""
    c0 = float(y.min()) - 0.1 * float(np.ptp(y)) - 1e-3
    t0, *_ = np.linalg.lstsq(w, np.log(y - c0), rcond=None)

    def resid(p):
        return p[0] + np.exp(w @ p[1:]) - y

    res = least_squares(resid, np.concatenate([[c0], t0]), method="lm", max_nfev=20000)
    r = resid(res.x)
    return float(res.x[0]), res.x[1:], float(np.std(r, ddof=len(res.x)) if len(r) > len(res.x) else np.std(r))


def mixing_law_objective(folder: str | Path, target: str = "metric/the_pile_pile_cc_val_loss") -> Objective:
    """-L(w) with L fitted to all RegMix rows for ``target``; the prior is the mean RegMix mixture."""
    mixes, losses = load_regmix(folder)
    if target not in losses.columns:
        raise ValueError(f"RegMix has no loss column {target!r}; columns: {list(losses.columns)}")
    w = mixes.to_numpy(dtype=np.float64)
    w = w / w.sum(axis=1, keepdims=True)
    y = losses[target].to_numpy(dtype=np.float64)
    c, t, sigma = fit_mixing_law(w, y)

    def f(x: np.ndarray) -> np.ndarray:
        return -(c + np.exp(np.atleast_2d(x) @ t))

    names = [col.removeprefix("train_the_pile_") for col in mixes.columns]
    prior = Prior(names, w.mean(axis=0))
    optimum = float(-(c + np.exp(t.min())))  # exp is monotone: the best vertex
    return Objective(f"mixing-law-{target.split('/')[-1]}", f, sigma, prior, optimum)
