"""Acceptance of the quality stage on an embedded corpus: teacher -> fastText -> scores -> clusters -> pruning.

A modest embedded corpus (the builder of the embedded default, fewer documents per topic) plus two low-quality
kinds that the heuristic teacher was *not* written against, generated here:

- shuffled-word pages: the words of a few held-out documentation passages, shuffled into many pages (a spam
  site that spins its own text); every word is a real word of our corpus, only the order is wrong;
- navigation-menu link lists: "Home | About Us | Contact | ..." menus.

The flow uses the pipeline's own functions with the schema's defaults (annotation sample, classifier
settings, thresholds), embeds with the packaged MiniLM and clusters with the configured k-means.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score
from snakemake.utils import validate

from climb.cluster.embeddings import embed_texts, load_encoder
from climb.cluster.kmeans import fit_centroids, nearest_centroids
from climb.core.config import SCHEMA_PATH
from climb.core.io import save_npy, write_parquet
from climb.corpus.embedded_corpus import build_corpus
from climb.quality.annotate import annotate
from climb.quality.classifier import build_classifiers, expected_scores, load
from climb.quality.score import score_shard
from climb.superclusters.merge import prune_and_merge
from climb.superclusters.prune import write_shard_cluster_sums
from tests.conftest import shared_data

SEED = 11
N_EXTRA = 30
MENU_ITEMS = ["Home", "About", "About Us", "Contact", "Contact Us", "Blog", "Products", "Services", "Login",
              "Sign in", "Register", "FAQ", "Help", "Careers", "News", "Events", "Shop", "Cart", "Support", "Docs",
              "Pricing", "Community", "Forum", "Search", "Privacy", "Terms", "Sitemap", "Press", "Partners",
              "Gallery", "Downloads", "Solutions", "Resources", "Team", "Newsletter", "Store", "Locations"]


def defaults() -> dict:
    config: dict = {}
    validate(config, str(SCHEMA_PATH))
    return config


def shuffled_pages(sources: list[str], n: int, rng: random.Random) -> list[str]:
    pool = [w for text in sources for w in text.split()]
    return [" ".join(rng.sample(pool, min(len(pool), rng.randint(60, 120)))) for _ in range(n)]


def navigation_menus(n: int, rng: random.Random) -> list[str]:
    menus = []
    for _ in range(n):
        lines = [rng.choice([" | ", " > ", " \u00b7 ", "\n"]).join(rng.sample(MENU_ITEMS, rng.randint(5, 10)))
                 for _ in range(rng.randint(3, 7))]
        menus.append("\n".join(lines))
    return menus


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    work = tmp_path_factory.mktemp("quality_flow")
    config = defaults()
    criteria = config["quality"]["criteria"]
    corpus, heldout = build_corpus(docs_per_topic=100, heldout_per_topic=5, planted_per_kind=N_EXTRA, min_chars=200,
                                   max_chars=1000, seed=SEED)
    rng = random.Random(SEED)
    extra = [(f"shuffled{i:03d}", t, "unseen/shuffled_words")
             for i, t in enumerate(shuffled_pages([d.text for d in rng.sample(heldout, 5)], N_EXTRA, rng))]
    extra += [(f"menu{i:03d}", t, "unseen/navigation_menu") for i, t in enumerate(navigation_menus(N_EXTRA, rng))]
    rows = [(d.id, d.text, d.origin) for d in corpus]
    # two shards of the embedded corpus, one of the unseen kinds
    shards = [rows[0::2], rows[1::2], extra]
    paths = []
    for i, shard in enumerate(shards):
        path = work / f"corpus{i}.parquet"
        write_parquet(path, pa.table({"id": [r[0] for r in shard], "text": [r[1] for r in shard],
                                      "n_chars": pa.array([len(r[1]) for r in shard], pa.int64()),
                                      "origin": [r[2] for r in shard]}))
        paths.append(str(path))
    encoder = load_encoder(max_seq_length=64, device="cpu")
    vectors = [embed_texts(encoder, [r[1] for r in shard], batch_size=32) for shard in shards]
    cluster = config["cluster"]
    centroids, _ = fit_centroids(np.concatenate(vectors), cluster["k"], cluster["niter"], cluster["nredo"], SEED)
    save_npy(work / "centroids.npy", centroids)
    for i, v in enumerate(vectors):
        labels, distances = nearest_centroids(v, centroids)
        write_parquet(work / f"assign{i}.parquet", pa.table({
            "id": pq.read_table(paths[i], columns=["id"]).column("id"),
            "cluster": pa.array(labels, pa.int32()), "distance": pa.array(distances, pa.float32())}))
    quality = config["quality"]
    annotate(paths, str(work / "annotations.parquet"), criteria, quality["teacher"], quality["sample_size"], SEED)
    models = [str(work / f"{c}.bin") for c in criteria]
    build_classifiers(models, str(work / "metrics.json"), criteria, quality["classifier"], SEED,
                      annotations=str(work / "annotations.parquet"))
    for i, path in enumerate(paths):
        score_shard(path, dict(zip(criteria, models, strict=True)), str(work / f"scores{i}.parquet"), criteria,
                    quality["classifier"])
        write_shard_cluster_sums(str(work / f"assign{i}.parquet"), str(work / f"scores{i}.parquet"), path,
                                 str(work / "centroids.npy"), str(work / f"sums{i}.parquet"), criteria)
    prune_and_merge([str(work / f"sums{i}.parquet") for i in range(len(paths))], work / "centroids.npy",
                    work / "stats.parquet", work / "superclusters.json", criteria, config["prune"], config["merge"])
    stats = pq.read_table(work / "stats.parquet").to_pandas()
    docs = pd.concat([
        pq.read_table(paths[i], columns=["id", "origin"]).to_pandas().assign(
            cluster=pq.read_table(work / f"assign{i}.parquet").column("cluster").to_numpy())
        for i in range(len(paths))])
    docs = docs.merge(stats[["cluster", "kept"]], on="cluster", how="left")
    return {"work": work, "paths": paths, "stats": stats, "docs": docs, "criteria": criteria, "config": config}


@pytest.mark.slow
def test_pruning_removes_junk_and_keeps_documentation(flow):
    docs, stats = flow["docs"], flow["stats"]
    kind = docs["origin"].str.split("/").str[0]
    kept_share = docs.groupby("origin")["kept"].mean()
    print("share of documents in kept clusters by origin:\n" + kept_share.round(3).to_string())
    assert docs.loc[kind == "natural", "kept"].mean() >= 0.9
    assert 1 - docs.loc[kind == "planted", "kept"].mean() >= 0.9
    for origin in ("unseen/shuffled_words", "unseen/navigation_menu"):
        assert 1 - kept_share[origin] >= 0.9, (origin, kept_share[origin])
    dropped = stats.loc[~stats["kept"]]
    assert len(dropped) and (dropped["reason"].str.len() > 0).all()
    sc = json.loads((flow["work"] / "superclusters.json").read_text())
    assert sc["n_superclusters"] == min(flow["config"]["merge"]["n_superclusters"], int(stats["kept"].sum()))


@pytest.mark.slow
def test_fasttext_quality_score_ranks_human_labels(flow, tmp_path):
    """Classifiers trained on teacher labels of the embedded corpus alone rank DCLM's human quality labels."""
    data = shared_data("dclm_quality", "agreement_data.jsonl")
    rows = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    texts, labels = [r["text"] for r in rows], [int(r["label"]) for r in rows]
    config, criteria = flow["config"], flow["criteria"]
    quality = config["quality"]
    embedded_only = flow["paths"][:2]  # not the unseen kinds: teacher labels of our corpus only
    annotate(embedded_only, str(tmp_path / "annotations.parquet"), criteria, quality["teacher"],
             quality["sample_size"], SEED)
    models = [str(tmp_path / f"{c}.bin") for c in criteria]
    build_classifiers(models, str(tmp_path / "metrics.json"), criteria, quality["classifier"], SEED,
                      annotations=str(tmp_path / "annotations.parquet"))
    scores = np.mean([expected_scores(load(m), texts, quality["classifier"]) for m in models], axis=0)
    auc = roc_auc_score(labels, scores)
    length_auc = roc_auc_score(labels, [len(t) for t in texts])
    print(f"DCLM agreement set: quality-score AUC {auc:.3f} (document length alone {length_auc:.3f})")
    assert auc >= 0.75
