"""Search benchmark on simulated objectives: ``python -m climb.bench.search_simulation [--seeds 20] [--out FILE]``.

For each objective (the planted quadratic over 21 domains, and the data-mixing law fitted to all RegMix rows)
and each seed, climb, regmix and random run at equal evaluation budgets with Gaussian noise on every
evaluation; the final mixture's regret is measured noise-free. Prints the mean regret with its standard error
and 95% t-interval, climb's win rate against each baseline, the TV distance between regmix's and random's final
mixtures on every seed (RegMix's top-k mean of simulated mixtures is never an evaluated one, so it must differ
from random's best evaluated mixture), and the paper's ablations (compute split, budget, initialisation).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import stats

from climb.bench.common import DATA_ROOT
from climb.search.core import SearchSettings, run_search
from climb.search.objectives import Objective, mixing_law_objective, planted_objective
from climb.search.sampling import SamplerSettings, tv_distance

REGMIX_DIR = DATA_ROOT / "regmix"

BASE = SearchSettings(rounds=(64, 32, 16), candidates=20_000, sampler=SamplerSettings(cap=None))
ABLATIONS: dict[str, dict[str, SearchSettings]] = {
    "compute split (budget 112)": {
        "6:1": replace(BASE, rounds=(96, 16)),
        "4:2:1": BASE,
        "2:2:1:1": replace(BASE, rounds=(37, 37, 19, 19)),
    },
    "budget": {
        "100%": BASE,
        "150%": replace(BASE, rounds=(96, 48, 24)),
        "200%": replace(BASE, rounds=(128, 64, 32)),
    },
    "initialisation": {
        "dirichlet": BASE,
        "random": replace(BASE, sampler=replace(BASE.sampler, init="random")),
    },
}


def interval(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and its 95% t-interval."""
    x = np.asarray(x, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return mean, mean - half, mean + half


def standard_error(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def win_rate(a: np.ndarray, b: np.ndarray) -> float:
    """Share of seeds where ``a`` has lower regret than ``b`` (ties count half)."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.mean((a < b) + 0.5 * (a == b)))


def regrets(objective_for_seed, settings: SearchSettings, strategies: tuple[str, ...], seeds: range,
            weights: dict[str, list[np.ndarray]] | None = None) -> dict:
    """Regret per strategy and seed; the final mixtures are appended to ``weights[strategy]`` when given."""
    out: dict[str, list[float]] = {s: [] for s in strategies}
    for seed in seeds:
        objective: Objective = objective_for_seed(seed)
        for strategy in strategies:
            evaluator = objective.evaluator(np.random.default_rng([seed, 17]))
            result = run_search(evaluator, objective.prior, settings, strategy, seed=seed)
            out[strategy].append(objective.regret(result.weights))
            if weights is not None:
                weights.setdefault(strategy, []).append(result.weights)
    return {s: np.asarray(v) for s, v in out.items()}


def objectives(regmix_dir: Path) -> dict:
    found = {"planted (21 domains)": planted_objective}
    if (regmix_dir / "train_mixture_1m.csv").exists():
        law = mixing_law_objective(regmix_dir)
        found["mixing law (RegMix Pile-CC)"] = lambda seed: law
    else:
        print(f"note: {regmix_dir} is absent; the mixing-law objective is skipped", file=sys.stderr)
    return found


def main_comparison(seeds: range, regmix_dir: Path, settings: SearchSettings = BASE, echo=print) -> dict:
    report = {}
    for name, objective_for_seed in objectives(regmix_dir).items():
        finals: dict[str, list[np.ndarray]] = {}
        r = regrets(objective_for_seed, settings, ("climb", "regmix", "random"), seeds, finals)
        obj0 = objective_for_seed(seeds[0])
        echo(f"\n== {name}: budget {settings.budget}, rounds {list(settings.rounds)}, {len(seeds)} seeds, "
             f"noise std {obj0.noise:.4g}, regmix {settings.regmix_candidates} simulated, top {settings.regmix_topk}")
        echo(f"{'strategy':<10} {'mean regret':>12} {'std err':>9}  95% interval")
        entry = {}
        for strategy, values in r.items():
            mean, lo, hi = interval(values)
            se = standard_error(values)
            echo(f"{strategy:<10} {mean:12.5f} {se:9.5f}  [{lo:.5f}, {hi:.5f}]")
            entry[strategy] = {"mean": mean, "se": se, "ci95": [lo, hi], "regrets": values.tolist()}
        for other in ("regmix", "random"):
            wr = win_rate(r["climb"], r[other])
            echo(f"climb win rate vs {other}: {wr:.2f}")
            entry[f"climb_win_rate_vs_{other}"] = wr
        tv = tv_distance(np.stack(finals["regmix"]), np.stack(finals["random"]))
        below = float(entry["random"]["mean"] - entry["regmix"]["mean"])
        entry["tv_regmix_random"] = tv.tolist()
        entry["regmix_below_random_by_se"] = below / entry["regmix"]["se"] if entry["regmix"]["se"] > 0 else None
        paired_se = standard_error(r["random"] - r["regmix"])
        entry["regmix_below_random_paired_se"] = paired_se
        echo(f"TV distance regmix vs random: min {tv.min():.4f}, mean {tv.mean():.4f} (goal: >= 0.05 on every seed)")
        by_se = entry["regmix_below_random_by_se"]
        echo(f"regmix mean regret below random's by {below:.5f} = {by_se if by_se is None else round(by_se, 2)} standard "
             f"errors of regmix's mean (goal: >= 1); paired per-seed difference {below:.5f} ± {paired_se:.5f} (se)")
        report[name] = entry
    return report


def ablations(seeds: range, regmix_dir: Path, echo=print) -> dict:
    report = {}
    for name, objective_for_seed in objectives(regmix_dir).items():
        report[name] = {}
        done: dict[SearchSettings, np.ndarray] = {}  # the 4:2:1 / 100% / dirichlet run is shared by all groups
        for group, variants in ABLATIONS.items():
            echo(f"\n== ablation on {name}: {group} (climb, {len(seeds)} seeds)")
            report[name][group] = {}
            for label, settings in variants.items():
                if settings not in done:
                    done[settings] = regrets(objective_for_seed, settings, ("climb",), seeds)["climb"]
                values = done[settings]
                mean, lo, hi = interval(values)
                echo(f"{label:<10} rounds {str(list(settings.rounds)):<18} regret {mean:.5f} [{lo:.5f}, {hi:.5f}]")
                report[name][group][label] = {"rounds": list(settings.rounds), "mean": mean, "ci95": [lo, hi]}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m climb.bench.search_simulation", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per objective (default 20)")
    parser.add_argument("--regmix", type=Path, default=REGMIX_DIR, help="folder with the RegMix CSVs")
    parser.add_argument("--no-ablations", action="store_true", help="only the climb / regmix / random comparison")
    parser.add_argument("--out", type=Path, help="also write the numbers as JSON here")
    args = parser.parse_args(argv)
    start = time.time()
    seeds = range(args.seeds)
    report = {"comparison": main_comparison(seeds, args.regmix)}
    if not args.no_ablations:
        report["ablations"] = ablations(seeds, args.regmix)
    print(f"\n({time.time() - start:.0f} s)")
    if args.out:
        from climb.core.io import write_json

        write_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
