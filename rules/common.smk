import re

from climb.shards import embedded_shards, resolve_shards, select_fit_shards

EMBEDDED_DIR = "results/embedded"


def get_input_shards():
    """{shard name: input path}; the embedded default corpus when `input.shards` is empty."""
    if config["input"]["shards"]:
        return resolve_shards(config["input"]["shards"])
    return embedded_shards(config["input"]["embedded"]["n_shards"], EMBEDDED_DIR)


SHARDS = get_input_shards()


wildcard_constraints:
    shard="|".join(re.escape(name) for name in SHARDS),


def get_shard_path(wildcards):
    return SHARDS[wildcards.shard]


def get_fit_shards():
    return select_fit_shards(list(SHARDS), config["cluster"]["fit_shards"])


def get_fit_embeddings(wildcards):
    return expand("results/embed/{shard}.npy", shard=get_fit_shards())


def get_all(pattern):
    """`pattern` expanded over every input shard."""
    return expand(pattern, shard=list(SHARDS))


def get_filter_lists():
    """Id lists of documents removed after ingest (dedup, decontamination); applied when proxies sample and export reads."""
    return []


def get_final_outputs():
    """Everything `rule all` builds, stage by stage."""
    return [
        "results/corpus/summary.json",
        "results/kmeans/centroids.npy",
        *get_all("results/kmeans/assign/{shard}.parquet"),
    ]
