"""Plots and tables for Snakemake's HTML report (``snakemake --report report.html``).

Every function reads pipeline outputs and writes one PNG (matplotlib, Agg backend) or one self-contained HTML
table; the rules in ``rules/report.smk`` mark them with ``report()`` and a caption. Nothing here changes a
decision of the pipeline: it shows what was decided and why.
"""

from __future__ import annotations

import html
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from climb.core.io import atomic_open, atomic_path, read_json  # noqa: E402
from climb.export.blend import read_mixture  # noqa: E402
from climb.superclusters.superclusters_file import read_superclusters  # noqa: E402
from climb.tokens.packed import read_filtered_ids, usable_rows  # noqa: E402

log = logging.getLogger("climb.report.pages")

PRUNED = "#b0b0b0"
STYLE = """<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;font-size:14px;margin:12px;color:#222}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}.snip{color:#444;font-size:12px;
white-space:pre-wrap;margin:2px 0 6px 0;border-left:3px solid #ccc;padding-left:6px}.bad{color:#b00}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;vertical-align:middle}
</style>"""


def colours(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` distinct colours (tab10, tab20, then hsv for more)."""
    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    if n <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(n)]
    return [plt.get_cmap("hsv")(i / n) for i in range(n)]


def _save(fig: Any, path: str) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def write_html(path: str, title: str, body: str) -> None:
    """A self-contained HTML page in the report's style: ``title`` as its heading, then ``body``."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}"
                 f"</head><body><h3>{html.escape(title)}</h3>{body}</body></html>\n")


def _hex(c: Sequence[float]) -> str:
    r, g, b = (int(round(255 * x)) for x in c[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def read_stats(stats_path: str) -> pd.DataFrame:
    stats = pq.read_table(stats_path).to_pandas()
    missing = {"cluster", "size", "kept", "reason", "super_cluster"} - set(stats.columns)
    if missing:
        raise ValueError(f"{stats_path}: missing column(s) {sorted(missing)}")
    return stats.sort_values("cluster").reset_index(drop=True)


def plot_cluster_sizes(stats_path: str, out_png: str) -> None:
    """Documents per cluster, largest first, coloured by super-cluster; pruned clusters grey and hatched."""
    stats = read_stats(stats_path).sort_values(["size", "cluster"], ascending=[False, True])
    n_sc = int(stats["super_cluster"].max()) + 1 if (stats["super_cluster"] >= 0).any() else 0
    palette = colours(n_sc)
    fig, ax = plt.subplots(figsize=(max(6.0, min(24.0, 0.18 * len(stats) + 3)), 4))
    x = np.arange(len(stats))
    kept = stats["kept"].to_numpy(bool)
    sc = stats["super_cluster"].to_numpy()
    ax.bar(x[kept], stats["size"].to_numpy()[kept], color=[palette[s] for s in sc[kept]], width=0.85)
    ax.bar(x[~kept], stats["size"].to_numpy()[~kept], color=PRUNED, hatch="//", edgecolor="#777", width=0.85,
           label=f"pruned ({int((~kept).sum())} clusters)")
    if len(stats) <= 60:
        ax.set_xticks(x, [str(c) for c in stats["cluster"]], fontsize=7, rotation=90)
    else:
        ax.set_xticks([])
    ax.set_xlabel("cluster (largest first; colour = super-cluster)")
    ax.set_ylabel("documents")
    ax.set_title(f"{len(stats)} clusters: {int(kept.sum())} kept in {n_sc} super-clusters, {int((~kept).sum())} pruned")
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette[s]) for s in range(n_sc)]
    ax.legend(handles + [plt.Rectangle((0, 0), 1, 1, facecolor=PRUNED, hatch="//", edgecolor="#777")],
              [f"sc{s:02d}" for s in range(n_sc)] + ["pruned"], fontsize=7, ncol=max(1, (n_sc + 1) // 12),
              loc="upper right")
    _save(fig, out_png)


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` projected on their first two principal components, and the explained variance ratios."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0)
    if len(x) < 2:
        return np.zeros((len(x), 2)), np.zeros(2)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    coords = u[:, :2] * s[:2]
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    # a fixed sign per axis (largest |value| positive) so the picture does not flip between runs
    coords *= np.where(coords[np.abs(coords).argmax(axis=0), [0, 1]] < 0, -1.0, 1.0)
    var = (s**2) / max((s**2).sum(), 1e-12)
    return coords, np.pad(var[:2], (0, max(0, 2 - len(var[:2]))))


def plot_centroid_map(centroids_path: str, stats_path: str, out_png: str) -> None:
    """The centroids on their first two principal components: colour = super-cluster, grey x = pruned."""
    centroids = np.load(centroids_path)
    stats = read_stats(stats_path)
    if len(stats) != len(centroids):
        raise ValueError(f"{stats_path} has {len(stats)} clusters but {centroids_path} has {len(centroids)} centroids")
    xy, var = pca_2d(centroids[stats["cluster"].to_numpy()])
    size = stats["size"].to_numpy(float)
    area = 30 + 400 * np.sqrt(size / max(size.max(), 1))
    kept = stats["kept"].to_numpy(bool)
    sc = stats["super_cluster"].to_numpy()
    n_sc = int(sc.max()) + 1 if kept.any() else 0
    palette = colours(n_sc)
    fig, ax = plt.subplots(figsize=(8, 6.5))
    for s in range(n_sc):
        m = kept & (sc == s)
        ax.scatter(xy[m, 0], xy[m, 1], s=area[m], color=palette[s], alpha=0.8, edgecolor="k", linewidth=0.4,
                   label=f"sc{s:02d}")
    ax.scatter(xy[~kept, 0], xy[~kept, 1], s=area[~kept], marker="X", color=PRUNED, edgecolor="#555", linewidth=0.6,
               label="pruned")
    if len(stats) <= 120:
        for (px, py), c in zip(xy, stats["cluster"], strict=True):
            ax.annotate(str(c), (px, py), fontsize=6, ha="center", va="center")
    ax.set_xlabel(f"PC1 ({100 * var[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * var[1]:.0f}% of variance)")
    ax.set_title("k-means centroids (PCA); marker area ~ sqrt(documents)")
    ax.legend(fontsize=7, markerscale=0.5, loc="best", ncol=max(1, (n_sc + 1) // 14))
    _save(fig, out_png)


def criteria_of(stats: pd.DataFrame) -> list[str]:
    return [c.removeprefix("mean_") for c in stats.columns if c.startswith("mean_")]


def plot_pruning(stats_path: str, thresholds: dict[str, float], out_png: str, out_html: str) -> None:
    """Mean score per criterion and cluster against the thresholds, and a table of every dropped cluster's reason."""
    stats = read_stats(stats_path)
    criteria = criteria_of(stats)
    if not criteria:
        raise ValueError(f"{stats_path}: no mean_<criterion> columns")
    fig, axes = plt.subplots(len(criteria), 1, figsize=(max(6.0, min(24.0, 0.18 * len(stats) + 3)),
                                                         1.8 * len(criteria) + 0.6), sharex=True, squeeze=False)
    x = np.arange(len(stats))
    kept = stats["kept"].to_numpy(bool)
    for ax, criterion in zip(axes[:, 0], criteria, strict=True):
        values = stats[f"mean_{criterion}"].to_numpy(float)
        threshold = thresholds.get(criterion)
        below = values < threshold if threshold is not None else np.zeros(len(values), bool)
        ax.bar(x, values, color=np.where(below, "#d62728", np.where(kept, "#1f77b4", PRUNED)), width=0.85)
        if threshold is not None:
            ax.axhline(threshold, color="#d62728", linestyle="--", linewidth=1)
            ax.text(1.0, threshold, f" threshold {threshold:g}", transform=ax.get_yaxis_transform(), color="#d62728",
                    va="center", fontsize=7)
        ax.set_ylabel(criterion.replace("_", "\n"), fontsize=7)
        ax.set_ylim(0, 5)
    axes[-1, 0].set_xticks(x, [str(c) for c in stats["cluster"]], fontsize=6, rotation=90)
    axes[-1, 0].set_xlabel("cluster (red: below the threshold; grey: pruned for another criterion or size)")
    axes[0, 0].set_title(f"Mean quality score per cluster: {int((~kept).sum())} of {len(stats)} clusters pruned")
    _save(fig, out_png)
    rows = []
    for _, r in stats[~stats["kept"]].iterrows():
        scores = " ".join(f"{c}={r[f'mean_{c}']:.2f}" for c in criteria)
        rows.append(f"<tr><td class=num>{int(r['cluster'])}</td><td class=num>{int(r['size'])}</td>"
                    f"<td class=bad>{html.escape(str(r['reason']))}</td><td>{html.escape(scores)}</td></tr>")
    body = (f"<p>{len(rows)} of {len(stats)} clusters pruned. Thresholds: "
            f"{html.escape(', '.join(f'{k} {v:g}' for k, v in thresholds.items()))}.</p>"
            "<table><tr><th>cluster</th><th>documents</th><th>reason</th><th>mean scores</th></tr>"
            + "".join(rows) + "</table>")
    write_html(out_html, "Pruned clusters and why", body)


TOKEN = re.compile(r"[A-Za-z][A-Za-z]{2,}")


def _sample_documents(corpus_paths: list[str], idx_paths: list[str], superclusters_path: str,
                      filter_paths: list[str], per_sc: int, seed: int) -> tuple[dict[int, list[str]], dict, dict]:
    """Up to ``per_sc`` documents per super-cluster (the smallest seeded keys: same sample for any sharding),
    plus documents and tokens per super-cluster."""
    from climb.export.climbmix import select_keys

    cluster_to_sc = read_superclusters(superclusters_path).cluster_to_sc
    filtered = read_filtered_ids(filter_paths)
    best: dict[int, list[tuple[int, str]]] = {}
    docs: dict[int, int] = {}
    tokens: dict[int, int] = {}
    for corpus_path, idx_path in zip(corpus_paths, idx_paths, strict=True):
        index = pq.read_table(idx_path, columns=["id", "length", "cluster"])
        sc, keep = usable_rows(index, cluster_to_sc, filtered)
        ids = index.column("id").to_numpy(zero_copy_only=False)
        length = index.column("length").to_numpy().astype(np.int64)
        keys = np.zeros(len(ids), np.uint64)
        keys[keep] = select_keys(ids[keep], seed)
        wanted = {}
        for s in np.unique(sc[keep]):
            rows = np.flatnonzero(keep & (sc == s))
            docs[int(s)] = docs.get(int(s), 0) + len(rows)
            tokens[int(s)] = tokens.get(int(s), 0) + int(length[rows].sum())
            wanted[int(s)] = rows[np.argsort(keys[rows], kind="stable")[:per_sc]]
        if not wanted:
            continue
        rows_all = np.sort(np.concatenate(list(wanted.values())))
        texts = pq.read_table(corpus_path, columns=["text"]).column("text").take(pa.array(rows_all)).to_pylist()
        text_of = dict(zip(rows_all.tolist(), texts, strict=True))
        for s, rows in wanted.items():
            merged = best.get(s, []) + [(int(keys[r]), text_of[int(r)]) for r in rows]
            best[s] = sorted(merged, key=lambda t: t[0])[:per_sc]
    return {s: [t for _, t in v] for s, v in best.items()}, docs, tokens


def characteristic_words(texts: dict[int, list[str]], n_words: int) -> dict[int, list[str]]:
    """Top TF-IDF words of each super-cluster (its sampled documents as one document; idf over super-clusters)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    keys = sorted(texts)
    if not keys:
        return {}
    corpus = [" ".join(texts[k]) for k in keys]
    vectorizer = TfidfVectorizer(token_pattern=TOKEN.pattern, lowercase=True, stop_words="english",
                                 sublinear_tf=True, max_features=50000)
    try:
        matrix = vectorizer.fit_transform(corpus).toarray()
    except ValueError:  # no words at all
        return dict.fromkeys(keys, [])
    vocab = np.array(vectorizer.get_feature_names_out())
    out = {}
    for i, k in enumerate(keys):
        order = np.lexsort((vocab, -matrix[i]))  # by score, ties alphabetical
        out[k] = [str(vocab[j]) for j in order[:n_words] if matrix[i, j] > 0]
    return out


def supercluster_contents(corpus_paths: list[str], idx_paths: list[str], superclusters_path: str,
                          filter_paths: list[str], out_png: str, out_html: str, *, n_words: int = 12,
                          n_snippets: int = 3, snippet_chars: int = 240, sample_docs: int = 200,
                          seed: int = 0) -> dict[int, list[str]]:
    """What each super-cluster holds: documents, tokens, characteristic words (TF-IDF) and example snippets."""
    superclusters = read_superclusters(superclusters_path)
    names = superclusters.names
    members = {int(s["id"]): s["clusters"] for s in superclusters.entries}
    texts, docs, tokens = _sample_documents(corpus_paths, idx_paths, superclusters_path, filter_paths,
                                            sample_docs, seed)
    words = characteristic_words(texts, n_words)
    ids = sorted(names)
    palette = colours(len(ids))
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(ids) + 1.2))
    y = np.arange(len(ids))[::-1]
    values = np.array([tokens.get(s, 0) for s in ids], float)
    ax.barh(y, values, color=palette, height=0.7)
    for yi, s, v in zip(y, ids, values, strict=True):
        ax.text(v, yi, "  " + ", ".join(words.get(s, [])[:6]), va="center", fontsize=8)
    ax.set_yticks(y, [f"{names[s]} ({docs.get(s, 0)} docs)" for s in ids], fontsize=8)
    ax.set_xlabel("tokens (usable: kept clusters, filters applied)")
    ax.set_xlim(0, max(values.max(), 1) * 1.9)
    ax.set_title("Super-clusters: tokens and characteristic words (TF-IDF)")
    _save(fig, out_png)
    rows = []
    for s, c in zip(ids, palette, strict=True):
        snippets = "".join(
            f"<div class=snip>{html.escape(' '.join(t.split())[:snippet_chars])}"
            f"{'…' if len(' '.join(t.split())) > snippet_chars else ''}</div>"
            for t in texts.get(s, [])[:n_snippets])
        rows.append(f"<tr><td><span class=swatch style='background:{_hex(c)}'></span>{html.escape(names[s])}</td>"
                    f"<td class=num>{docs.get(s, 0)}</td><td class=num>{tokens.get(s, 0)}</td>"
                    f"<td>{html.escape(', '.join(map(str, members.get(s, []))))}</td>"
                    f"<td>{html.escape(', '.join(words.get(s, [])))}</td><td>{snippets}</td></tr>")
    body = ("<table><tr><th>super-cluster</th><th>documents</th><th>tokens</th><th>clusters</th>"
            "<th>characteristic words</th><th>examples</th></tr>" + "".join(rows) + "</table>")
    write_html(out_html, "What each super-cluster holds", body)
    return words


def plot_weights_vs_prior(mixture_path: str, prior_path: str, superclusters_path: str, out_png: str,
                          title: str = "Final weights against the token-share prior") -> None:
    """Grouped bars: the exported (final) weight and the prior of every super-cluster."""
    names = read_superclusters(superclusters_path).names
    ids = sorted(names)
    final = read_mixture(mixture_path, ids)
    prior = read_mixture(prior_path, ids)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(ids) + 2), 4))
    x = np.arange(len(ids))
    ax.bar(x - 0.2, [prior[s] for s in ids], width=0.4, color="#aaaaaa", label="prior (token share)")
    ax.bar(x + 0.2, [final[s] for s in ids], width=0.4, color="#1f77b4", label="final weight")
    ax.set_xticks(x, [names[s] for s in ids], rotation=45 if len(ids) > 10 else 0, fontsize=8)
    ax.set_ylabel("share of tokens")
    ax.set_title(title)
    ax.legend()
    _save(fig, out_png)


# --- search history: rounds, predictor, objective ---------------------------------------------------------------


def read_search_history(rounds: Sequence[int], weights_paths: Sequence[str], score_paths: Sequence[str],
                        ids: Sequence[int]) -> pd.DataFrame:
    """One row per evaluated mixture: round, objective, predicted (None in round 1) and one column per weight.

    Mixtures whose proxy failed (a score with a ``failed`` record) are left out and counted in the log."""
    if not len(rounds) == len(weights_paths) == len(score_paths):
        raise ValueError(f"{len(rounds)} rounds, {len(weights_paths)} mixtures and {len(score_paths)} score files")
    rows = []
    failed = []
    for r, wp, sp in zip(rounds, weights_paths, score_paths, strict=True):
        w = read_json(wp)
        weights = read_mixture(wp, list(ids))
        score = read_json(sp)
        objective = score.get("objective") if isinstance(score, dict) else None
        if objective is None and isinstance(score, dict) and score.get("failed"):
            failed.append(str(Path(wp).parent))
            continue
        if not isinstance(objective, int | float) or not math.isfinite(objective):
            raise ValueError(f"{sp}: no finite `objective`")
        rows.append({"round": int(r), "mixture": str(Path(wp).parent), "objective": float(objective),
                     "predicted": w.get("predicted"), **{f"w{s}": weights[s] for s in ids}})
    if failed:
        log.warning("search history: %d failed mixtures left out of the plots: %s", len(failed), ", ".join(failed))
    if not rows:
        raise ValueError(f"no evaluated mixture has a score ({len(failed)} failed)")
    return pd.DataFrame(rows)


def plot_round_mixtures(history: pd.DataFrame, names: dict[int, str], out_png: str) -> None:
    """Every evaluated mixture as a stacked bar of its weights, grouped by round, ordered by objective."""
    ids = sorted(names)
    palette = colours(len(ids))
    rounds = sorted(history["round"].unique())
    fig, axes = plt.subplots(1, len(rounds), figsize=(max(8.0, 0.22 * len(history) + 3), 4.5), squeeze=False,
                             sharey=True, gridspec_kw={"width_ratios": [max(1, (history["round"] == r).sum())
                                                                       for r in rounds]})
    for ax, r in zip(axes[0], rounds, strict=True):
        h = history[history["round"] == r].sort_values("objective", ascending=False)
        bottom = np.zeros(len(h))
        x = np.arange(len(h))
        for s, c in zip(ids, palette, strict=True):
            ax.bar(x, h[f"w{s}"].to_numpy(), bottom=bottom, color=c, width=0.9, label=names[s])
            bottom += h[f"w{s}"].to_numpy()
        ax.set_title(f"round {r} ({len(h)} mixtures)", fontsize=9)
        ax.set_xticks([])
        ax.set_xlabel("best objective → worst", fontsize=8)
    axes[0, 0].set_ylabel("weight")
    axes[0, -1].legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.suptitle("Mixtures of every round (stacked super-cluster weights)")
    _save(fig, out_png)


def plot_predicted_vs_measured(history: pd.DataFrame, out_png: str, fitted: np.ndarray | None = None) -> None:
    """Predicted against measured objective of every mixture the predictor proposed (rounds >= 2, predicted before
    its proxy was trained), and, when given, the final predictor's in-sample fit on every evaluated mixture."""
    proposed = history[history["predicted"].notna()]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    xs, ys = [], []
    if fitted is not None:
        ax.scatter(fitted, history["objective"], facecolor="none", edgecolor="#555", s=40,
                   label="final predictor, in-sample fit")
        xs.append(np.asarray(fitted, float))
        ys.append(history["objective"].to_numpy(float))
    rounds = sorted(proposed["round"].unique())
    for r, c in zip(rounds, colours(len(rounds) + 1)[1:], strict=True):
        g = proposed[proposed["round"] == r]
        ax.scatter(g["predicted"].astype(float), g["objective"], color=c, edgecolor="k", linewidth=0.4,
                   label=f"round {r}: predicted before training")
        xs.append(g["predicted"].to_numpy(float))
        ys.append(g["objective"].to_numpy(float))
    title = "Predictor: predicted vs measured"
    if xs:
        lo = float(min(np.min(x) for x in [*xs, *ys]))
        hi = float(max(np.max(x) for x in [*xs, *ys]))
        pad = 0.05 * (hi - lo or 1)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#888", linestyle="--", linewidth=1, label="y = x")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        if len(proposed) >= 3:
            rho = pd.Series(proposed["predicted"].to_numpy(float)).corr(
                pd.Series(proposed["objective"].to_numpy(float)), method="spearman")
            title += f"\nproposals: Spearman {rho:.2f} over {len(proposed)}"
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no predictions (search has one round)", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel("predicted objective")
    ax.set_ylabel("measured objective (higher is better)")
    _save(fig, out_png)


def plot_objective_per_round(history: pd.DataFrame, out_png: str, final_predicted: float | None = None) -> None:
    """Objective of every evaluated mixture by round (points, box) and the best so far."""
    rounds = sorted(history["round"].unique())
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(rounds) + 2), 4.5))
    data = [history.loc[history["round"] == r, "objective"].to_numpy(float) for r in rounds]
    ax.boxplot(data, positions=range(len(rounds)), widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(d)), d, s=14, color="#1f77b4", alpha=0.7, zorder=3)
    best = np.maximum.accumulate([d.max() for d in data])
    ax.plot(range(len(rounds)), best, color="#d62728", marker="o", label="best so far")
    if final_predicted is not None:
        ax.axhline(final_predicted, color="#2ca02c", linestyle=":", label=f"final mixture, predicted {final_predicted:.4g}")
    ax.set_xticks(range(len(rounds)), [f"round {r}" for r in rounds])
    ax.set_ylabel("objective (higher is better)")
    ax.set_title("Objective per round")
    ax.legend(fontsize=8)
    _save(fig, out_png)


def search_report(rounds: Sequence[int], weights_paths: Sequence[str], score_paths: Sequence[str],
                  superclusters_path: str, final_path: str, out_mixtures: str, out_predicted: str,
                  out_objective: str, model_path: str | None = None) -> pd.DataFrame:
    """The three search plots of one target from its evaluated mixtures (and its last predictor, when given)."""
    names = read_superclusters(superclusters_path).names
    ids = sorted(names)
    history = read_search_history(rounds, weights_paths, score_paths, ids)
    final = read_json(final_path)
    predicted = final.get("predicted") if isinstance(final, dict) else None
    fitted = None
    if model_path is not None:
        from climb.search.predictor import load_model

        booster = load_model(model_path)
        if booster.num_feature() != len(ids):
            raise ValueError(f"{model_path} takes {booster.num_feature()} weights but there are {len(ids)} super-clusters")
        fitted = booster.predict(history[[f"w{s}" for s in ids]].to_numpy(float))
    plot_round_mixtures(history, names, out_mixtures)
    plot_predicted_vs_measured(history, out_predicted, fitted)
    plot_objective_per_round(history, out_objective, predicted if isinstance(predicted, int | float) else None)
    return history



def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3g}" if isinstance(value, float) else html.escape(str(value))


def search_signal_page(summary_paths: Sequence[str], final_path: str, out_html: str) -> None:
    """Per round: the objectives' spread against the noise floor (SNR; paired noise: the search's proxies share one
    seed) beside the replicates' seed-to-seed std, and the predictor's skill; then the final mixture's verdict."""
    rows = []
    for path in summary_paths:
        s = read_json(path)
        signal, skill, noise = s.get("signal") or {}, s.get("skill") or {}, s.get("noise") or {}
        fitted = s.get("fitted_signal") or {}
        rows.append(f"<tr><td>{s['round']}</td><td>{_fmt(signal.get('n'))}</td><td>{_fmt(signal.get('objective_std'))}"
                    f"</td><td>{_fmt(noise.get('std'))} ({noise.get('kind', 'seeds')})</td>"
                    f"<td>{_fmt(noise.get('seed_std', noise.get('std')))} ({_fmt(noise.get('n_replicates'))})</td>"
                    f"<td>{_fmt(signal.get('snr'))}</td><td>{_fmt(fitted.get('snr'))}</td>"
                    f"<td>{_fmt(skill.get('out_of_fold_spearman'))}</td>"
                    f"<td>{_fmt(skill.get('realized_spearman'))}</td></tr>")
    body = ("<table><tr><th>round</th><th>mixtures</th><th>objective std</th><th>noise std (kind)</th>"
            "<th>seed std (replicates)</th>"
            "<th>SNR</th><th>SNR, rounds 1..r</th><th>out-of-fold Spearman</th><th>predicted vs measured Spearman</th>"
            "</tr>"
            + "".join(rows) + "</table>")
    final = read_json(final_path)
    judged = final.get("verdict") if isinstance(final, dict) else None
    if judged:
        state = "supported" if judged["supported"] else "NOT supported"
        fallback = " The natural mixture is used instead." if final.get("fallback") == "prior" else ""
        body += (f"<p><b>Final mixture: {state}.</b>{fallback}</p><table><tr><th>check</th><th>value</th>"
                 "<th>threshold</th><th>passed</th><th>meaning</th></tr>"
                 + "".join(f"<tr><td>{r['check']}</td><td>{_fmt(r['value'])}</td><td>{html.escape(r['rule'])} "
                           f"{_fmt(r['threshold'])}</td><td>{'yes' if r['ok'] else 'no'}</td>"
                           f"<td>{html.escape(r['says'])}</td></tr>" for r in judged["reasons"]) + "</table>")
    else:
        body += "<p>The exported final mixture carries no verdict (only the climb strategy is judged).</p>"
    write_html(out_html, "Does the search see signal?", body)


def plot_score_distribution(distribution: pd.DataFrame, cluster_thresholds: dict[str, float],
                            document_thresholds: dict[str, float], out_png: str, out_html: str) -> None:
    """Each cluster's score distribution per criterion (10-90% range, quartile box, median) against the cluster
    threshold (on the mean) and the document threshold, so that '0 clusters pruned' explains itself."""
    criteria = list(dict.fromkeys(distribution["criterion"]))
    clusters = sorted(distribution["cluster"].unique())
    fig, axes = plt.subplots(len(criteria), 1, figsize=(max(6.0, min(24.0, 0.18 * len(clusters) + 3)),
                                                         1.8 * len(criteria) + 0.6), sharex=True, squeeze=False)
    x = np.arange(len(clusters))
    for ax, criterion in zip(axes[:, 0], criteria, strict=True):
        d = distribution[distribution["criterion"] == criterion].set_index("cluster").loc[clusters]
        ax.vlines(x, d["p10"], d["p90"], color="#7f7f7f", linewidth=1)
        ax.bar(x, d["p75"] - d["p25"], bottom=d["p25"], width=0.6, color="#aec7e8", edgecolor="#1f77b4")
        ax.scatter(x, d["p50"], color="#1f77b4", s=8, zorder=3)
        ax.scatter(x, d["mean"], color="#d62728", marker="_", s=40, zorder=3)
        for threshold, style, label in ((cluster_thresholds.get(criterion), "--", "cluster mean"),
                                        (document_thresholds.get(criterion), ":", "document")):
            if threshold is not None:
                ax.axhline(threshold, color="#d62728", linestyle=style, linewidth=1)
                ax.text(1.0, threshold, f" {label} {threshold:g}", transform=ax.get_yaxis_transform(),
                        color="#d62728", va="center", fontsize=7)
        ax.set_ylabel(criterion.replace("_", "\n"), fontsize=7)
        ax.set_ylim(0, 5)
    axes[-1, 0].set_xticks(x, [str(c) for c in clusters], fontsize=6, rotation=90)
    axes[-1, 0].set_xlabel("cluster (box: 25-75%, line: 10-90%, dot: median, red dash: mean)")
    axes[0, 0].set_title("Document scores per cluster against the thresholds")
    _save(fig, out_png)
    rows = []
    for cluster in clusters:
        d = distribution[distribution["cluster"] == cluster].set_index("criterion")
        cells = "".join(
            f"<td class=num>{d.loc[c, 'mean']:.2f} ({d.loc[c, 'p10']:.2f}-{d.loc[c, 'p90']:.2f})"
            + (f"; {100 * d.loc[c, 'below_document_threshold']:.1f}% below"
               if d.loc[c, "below_document_threshold"] is not None and not pd.isna(d.loc[c, "below_document_threshold"])
               else "") + "</td>" for c in criteria)
        rows.append(f"<tr><td class=num>{cluster}</td><td class=num>{int(d['documents'].iloc[0])}</td>{cells}</tr>")
    doc = ", ".join(f"{k} {v:g}" for k, v in document_thresholds.items()) or "none (prune.document_thresholds)"
    body = (f"<p>Cluster thresholds (on the mean): {html.escape(', '.join(f'{k} {v:g}' for k, v in cluster_thresholds.items()))}"
            f". Document thresholds: {html.escape(doc)}. Each cell: mean (10th-90th percentile)"
            + ("; share of the cluster's documents below the document threshold" if document_thresholds else "")
            + ". A cluster whose mean sits above its threshold while its 10th percentile is far below holds "
              "low-quality documents that only a document threshold removes.</p>"
            "<table><tr><th>cluster</th><th>documents</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in criteria)
            + "</tr>" + "".join(rows) + "</table>")
    write_html(out_html, "Document scores per cluster", body)
