"""Mixture validation, the paper's Table 1 protocol: target models trained on each strategy's final mixture.

For every strategy (CLIMB's final mixture and the baselines the search stage builds: RegMix's one-shot
prediction, the best random pool mixture, the natural token-share prior, uniform weights, DoReMi's averaged
Group DRO weights) and every seed, a
target model — larger than the proxies, trained by the proxies' own code (:func:`climb.proxy.train.train_proxy`) — is
scored by :func:`climb.proxy.evaluate.evaluate_proxy` on held-out tasks the search never saw. This module derives the
target model's settings and seeds, and writes the table: per task metric and the held-out objective, mean ± std
over seeds, as CSV, Markdown and an HTML table for the report, with CLIMB's margin over each other strategy, the
paired per-seed difference to CLIMB with its 95% t-interval (target model k of every strategy has the same seed),
and the proxy compute each strategy spent (proxies trained x tokens per proxy).
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import logging
import math
from collections.abc import Sequence
from typing import Any

import jsonschema
import numpy as np
from scipy import stats

from climb.core.config import load_schema
from climb.core.io import atomic_open, read_json, write_json

log = logging.getLogger(__name__)

LABELS = {
    "climb": "CLIMB",
    "regmix": "RegMix (one-shot)",
    "random": "Best random",
    "natural": "Natural (token prior)",
    "uniform": "Uniform",
    "doremi": "DoReMi",
}


class ValidationError(ValueError):
    """Validation settings or inputs that cannot give a table."""


def target_model_settings(proxy: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The proxy settings with ``validation.model`` applied, checked against the schema of ``proxy``."""
    schema = load_schema()["properties"]["proxy"]
    unknown = sorted(set(overrides) - set(schema["properties"]))
    if unknown:
        raise ValidationError(f"validation.model: unknown key(s) {unknown}; allowed: keys of `proxy` "
                              f"({', '.join(sorted(schema['properties']))})")
    settings = {**proxy, **overrides}
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(settings), key=lambda e: list(e.absolute_path))
    if errors:
        key = ".".join(str(p) for p in errors[0].absolute_path)
        raise ValidationError(f"validation.model.{key}: {errors[0].message}")
    return settings


def target_model_seed(seed: int, index: int) -> int:
    """Seed of target model ``index`` (0-based): distinct from the proxies' seed and from each other."""
    return int(hashlib.sha256(f"{seed}/validation/{index}".encode()).hexdigest()[:8], 16)


def _columns(tasks: Sequence[dict]) -> list[str]:
    return [f"{t['task']}/{t['metric']}" for t in tasks]


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean of the per-seed differences ``a[k] - b[k]`` and its t-interval (None bounds with one seed)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or len(d) == 0:
        raise ValidationError(f"paired difference needs the same number of seeds on both sides, got {len(a)} and {len(b)}")
    mean = float(d.mean())
    if len(d) < 2:
        return {"mean": mean, "n": 1, "se": None, "ci": [None, None], "level": level}
    se = float(d.std(ddof=1) / math.sqrt(len(d)))
    half = float(stats.t.ppf(0.5 + level / 2, len(d) - 1) * se)
    return {"mean": mean, "n": int(len(d)), "se": se, "ci": [mean - half, mean + half], "level": level}


def validated_weights(final: dict[str, Any]) -> dict[str, Any]:
    """The weights target models train on for one strategy's final mixture: its ``weights``, except for a CLIMB mixture
    the search did not support and replaced by the prior (``fallback``): then the searched weights (``searched``).
    Validation measures what the search found; the verdict is then checked against that measurement."""
    if final.get("fallback") and isinstance(final.get("searched"), dict):
        return final["searched"]["weights"]
    return final["weights"]


def mixture_to_validate(final_path: str, out_path: str) -> dict[str, Any]:
    """Write ``results/validation/{strategy}/mixture.json``: :func:`validated_weights` of the final mixture, and
    which weights they are (``validated``: final or searched)."""
    final = read_json(final_path)
    weights = validated_weights(final)
    out = {"weights": weights, "validated": "final" if weights is final["weights"] else "searched",
           "final_mixture": str(final_path)}
    write_json(out_path, out)
    log.info("%s: validating the %s weights", final_path, out["validated"])
    return out


def proxy_compute(mixture: dict[str, Any], proxy_tokens: int) -> dict[str, int]:
    """Proxies a strategy trained for its final mixture, and their tokens: ``proxies`` when the mixture file says
    (doremi: its reference and DRO proxies), else the evaluated mixtures it was chosen from (failed ones too: they
    were trained); natural and uniform train none."""
    n = mixture.get("proxies", mixture.get("n_evaluated", 0))
    return {"proxies": int(n), "proxy_tokens": int(n) * int(proxy_tokens)}


def summarize(strategies: Sequence[str], scores: dict[str, list[dict]], tasks: Sequence[dict]) -> dict[str, Any]:
    """Mean ± std over seeds per strategy, and CLIMB's objective margin over each other strategy.

    ``scores[strategy]`` holds one :func:`climb.proxy.evaluate.evaluate_proxy` report per seed. A margin counts as a win
    when it exceeds the larger of the two strategies' seed standard deviations.
    """
    columns = _columns(tasks)
    rows: dict[str, Any] = {}
    for strategy in strategies:
        reports = scores[strategy]
        if not reports:
            raise ValidationError(f"strategy {strategy!r} has no scores")
        row: dict[str, Any] = {"seeds": len(reports)}
        for column in [*columns, "objective"]:
            values = [r["objective"] if column == "objective" else r["metrics"][column] for r in reports]
            if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
                raise ValidationError(f"strategy {strategy!r}: {column} is not a finite number in every seed: {values}")
            mean, std = _mean_std(values)
            row[column] = {"mean": mean, "std": std, "values": [float(v) for v in values]}
        rows[strategy] = row
    comparisons = {}
    if "climb" in rows:
        climb = rows["climb"]["objective"]
        for strategy in strategies:
            if strategy == "climb":
                continue
            other = rows[strategy]["objective"]
            margin = climb["mean"] - other["mean"]
            noise = max(climb["std"], other["std"])
            if other["values"] and len(other["values"]) == len(climb["values"]):
                paired = paired_difference(climb["values"], other["values"])
            else:
                paired = None
            comparisons[strategy] = {"margin": margin, "seed_std": noise, "climb_wins": bool(margin > noise),
                                     "paired": paired}
    return {"tasks": list(tasks), "columns": columns, "strategies": rows, "climb_vs": comparisons}


def verdict_against_validation(summary: dict, climb_mixture: dict) -> dict | None:
    """The search's verdict on the climb mixture next to what validation measured against the natural mixture.

    CLIMB's row is the searched mixture (:func:`validated_weights`), also when the verdict rejected it. A supported
    mixture whose validated objective is worse than natural's by more than the larger seed std is contradicted: the
    search claimed a gain that the target models refute (a defect to investigate). An unsupported one that validates
    better than natural by more than the seed std is a gain the verdict missed; ``missed`` also names the other
    strategies that validate better than natural by more than their seed std while the verdict was negative."""
    judged = climb_mixture.get("verdict")
    versus = summary["climb_vs"].get("natural")
    if not judged or versus is None:
        return None
    margin, noise = versus["margin"], versus["seed_std"]
    if judged["supported"]:
        outcome = "confirmed" if margin > noise else "contradicted" if margin < -noise else "not confirmed"
    else:
        outcome = "agrees" if margin <= noise else "missed: the searched mixture validates better than natural"
    rows, missed = summary["strategies"], []
    if not judged["supported"] and "natural" in rows:
        natural = rows["natural"]["objective"]
        for strategy, row in rows.items():
            gain = row["objective"]["mean"] - natural["mean"]
            if strategy not in ("climb", "natural") and gain > max(row["objective"]["std"], natural["std"]):
                missed.append(strategy)
        if missed and outcome == "agrees":
            outcome = f"missed: {', '.join(missed)} validate better than natural by more than the seed std"
    return {"supported": judged["supported"], "fallback": climb_mixture.get("fallback"), "margin_vs_natural": margin,
            "seed_std": noise, "outcome": outcome, "contradicted": outcome == "contradicted", "missed": missed}


def _arrow(task: dict) -> str:
    return "↑" if task.get("higher_is_better", True) else "↓"


def _cell(stats: dict) -> str:
    return f"{stats['mean']:.4f} ± {stats['std']:.4f}"


def _paired_cell(paired: dict | None) -> str:
    if not paired:
        return "n/a"
    lo, hi = paired["ci"]
    if lo is None:
        return f"{paired['mean']:+.4f} (1 seed, no interval)"
    return f"{paired['mean']:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def _weights_row(mixture: dict, ids: list[str]) -> list[str]:
    return [f"{validated_weights(mixture).get(i, 0.0):.3f}" for i in ids]


def render_markdown(summary: dict, mixtures: dict[str, dict], target: str, model: dict) -> str:
    """The table (per task metric, objective; mean ± std over seeds), CLIMB's margins and each strategy's weights."""
    tasks, columns = summary["tasks"], summary["columns"]
    strategies = list(summary["strategies"])
    compute = summary.get("compute")
    header = ["Strategy", *[f"{c} {_arrow(t)}" for c, t in zip(columns, tasks, strict=True)], "Objective (weighted average) ↑", "Seeds"]
    if compute:
        header.append("Proxy compute (proxies, tokens)")
    lines = [f"# Mixture validation: target `{target}`", "",
             f"Target model: preset `{model['preset']}`, {model['tokens']:,} tokens; mean ± std over seeds, "
             "scored on held-out tasks the search never saw.", "",
             "| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for s in strategies:
        row = summary["strategies"][s]
        cells = [LABELS.get(s, s), *[_cell(row[c]) for c in columns], _cell(row["objective"]), str(row["seeds"])]
        if compute:
            cells.append(f"{compute[s]['proxies']} × {compute[s]['proxy_tokens'] // max(1, compute[s]['proxies']):,}"
                         if compute[s]["proxies"] else "0")
        lines.append("| " + " | ".join(cells) + " |")
    if summary["climb_vs"]:
        lines += ["", "| CLIMB vs | Objective margin | Larger seed std | CLIMB wins | Paired per-seed difference "
                  "(CLIMB − strategy), 95% t-interval |", "|---|---:|---:|---|---:|"]
        for s, c in summary["climb_vs"].items():
            lines.append(f"| {LABELS.get(s, s)} | {c['margin']:+.4f} | {c['seed_std']:.4f} | "
                         f"{'yes' if c['climb_wins'] else 'no'} | {_paired_cell(c.get('paired'))} |")
    check = summary.get("verdict")
    if check:
        state = "supported" if check["supported"] else "not supported"
        if check["fallback"] == "prior":
            state += " (CLIMB's row is the searched mixture; the natural mixture was exported instead)"
        flag = "CONTRADICTED: the search's supported mixture validates worse than natural" \
            if check["contradicted"] else check["outcome"]
        lines += ["", f"Search verdict on the CLIMB mixture: {state}; against natural in validation: {flag} "
                  f"(margin {check['margin_vs_natural']:+.4f}, larger seed std {check['seed_std']:.4f})."]
    if compute:
        lines += ["", "Proxy compute: the proxies each strategy trained for its final mixture × tokens per proxy (DoReMi "
                  "trains two; CLIMB, RegMix and best random the search's budget; natural and uniform none)."]
    ids = sorted({i for m in mixtures.values() for i in m["weights"]}, key=int)
    lines += ["", "Mixture weights per super-cluster (the weights the target models trained on):", "",
              "| Strategy | " + " | ".join(f"sc{int(i):02d}" for i in ids) + " |",
              "|---|" + "---:|" * len(ids)]
    for s in strategies:
        lines.append(f"| {LABELS.get(s, s)} | " + " | ".join(_weights_row(mixtures[s], ids)) + " |")
    return "\n".join(lines) + "\n"


def render_csv(summary: dict) -> str:
    columns = [*summary["columns"], "objective"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["strategy", "seeds", *[f"{c}_{k}" for c in columns for k in ("mean", "std")]])
    for s, row in summary["strategies"].items():
        writer.writerow([s, row["seeds"], *[f"{row[c][k]:.6f}" for c in columns for k in ("mean", "std")]])
    return out.getvalue()


def render_seeds_csv(summary: dict, seeds: Sequence[int]) -> str:
    columns = [*summary["columns"], "objective"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["strategy", "seed", *columns])
    for s, row in summary["strategies"].items():
        for k, seed in enumerate(seeds[: row["seeds"]]):
            writer.writerow([s, seed, *[f"{row[c]['values'][k]:.6f}" for c in columns]])
    return out.getvalue()


def render_html(markdown_text: str) -> str:
    """The body of the Markdown (its tables and paragraphs, not its title) as HTML, for the report's page."""
    body, table = [], []

    def flush() -> None:
        if table:
            head, *rest = table
            body.append("<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr></thead><tbody>"
                        + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rest)
                        + "</tbody></table>")
            table.clear()

    for line in markdown_text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= set("-:") for c in cells):
                table.append(cells)
            continue
        flush()
        if line.strip() and not line.startswith("# "):
            body.append(f"<p>{html.escape(line)}</p>")
    flush()
    return "".join(body)


def validation_table(strategies: Sequence[str], n_seeds: int, score_paths: Sequence[str], mixture_paths: Sequence[str],
                     target: str, model: dict, seed: int, out_csv: str, out_seeds_csv: str, out_md: str, out_html: str,
                     out_json: str, proxy_tokens: int | None = None) -> dict:
    """Write the validation table from the scores (strategy-major, seed-minor) and the strategies' final mixtures.

    ``proxy_tokens``: tokens per proxy (``proxy.tokens``), for the proxy-compute table; omitted when None."""
    if len(score_paths) != len(strategies) * n_seeds or len(mixture_paths) != len(strategies):
        raise ValidationError(f"expected {len(strategies)} x {n_seeds} score files and {len(strategies)} mixtures, got "
                              f"{len(score_paths)} and {len(mixture_paths)}")
    reports = [read_json(p) for p in score_paths]
    scores = {s: reports[k * n_seeds : (k + 1) * n_seeds] for k, s in enumerate(strategies)}
    tasks = reports[0]["tasks"]
    summary = summarize(strategies, scores, tasks)
    mixtures = {s: read_json(p) for s, p in zip(strategies, mixture_paths, strict=True)}
    seeds = [target_model_seed(seed, k) for k in range(n_seeds)]
    summary["verdict"] = verdict_against_validation(summary, mixtures["climb"]) if "climb" in mixtures else None
    summary = {**summary, "target": target, "model": {"preset": model["preset"], "tokens": model["tokens"]},
               "seeds": seeds, "mixtures": {s: {"path": p, "weights": validated_weights(mixtures[s])}
                                           for s, p in zip(strategies, mixture_paths, strict=True)}}
    if proxy_tokens is not None:
        summary["compute"] = {s: proxy_compute(mixtures[s], proxy_tokens) for s in strategies}
    text = render_markdown(summary, mixtures, target, model)
    for path, content in ((out_md, text), (out_csv, render_csv(summary)), (out_seeds_csv, render_seeds_csv(summary, seeds))):
        with atomic_open(path, "w", encoding="utf-8") as fh:
            fh.write(content)
    from climb.report.pages import (
        write_html,  # here: climb.report.pages imports matplotlib, and the workflow imports this module
    )

    write_html(out_html, f"Mixture validation: target {target}", render_html(text))
    write_json(out_json, summary)
    log.info("validation table of target %s:\n%s", target, text)
    return summary
