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
    return get_dedup_lists() + get_decontam_lists()


def get_dedup_n_groups():
    """Dedup jobs: cluster c goes to group c mod n (no more groups than clusters)."""
    return min(config["dedup"]["n_groups"], config["cluster"]["k"])


def get_dedup_lists():
    if not config["dedup"]["enabled"]:
        return []
    return expand("results/filter/dedup/{group}.parquet", group=range(get_dedup_n_groups()))


def get_dedup_counts():
    if not config["dedup"]["enabled"]:
        return []
    return expand("results/filter/dedup/counts/{group}.json", group=range(get_dedup_n_groups()))


def get_decontam_lists():
    if not config["decontam"]["enabled"]:
        return []
    return get_all("results/filter/decontam/{shard}.parquet")


def get_decontam_tasks():
    """Every task (or group) of every configured target, plus decontam.tasks."""
    from climb.decontam import target_tasks

    return sorted(set(target_tasks(config["targets"])) | set(config["decontam"]["tasks"]))


def get_decontam_index_inputs(wildcards):
    """Evaluation data the pipeline builds itself (results/...) that the decontaminated tasks read."""
    from climb.decontam import task_data_files
    from climb.evaluate import include_paths

    files = task_data_files(get_decontam_tasks(), include_paths(config["evaluation"]),
                            config["evaluation"]["data_files"])
    return [f for f in files if f.startswith("results/")]


LOCAL_EVAL_DATA = {
    "climb_heldout_bpb": "results/eval/heldout_bpb.jsonl",
    "climb_heldout_mc": "results/eval/heldout_mc.jsonl",
}


def get_tokenizer_inputs(wildcards):
    """The configured tokenizer folder, or the fit shards' corpus to train the BPE on (so a new shard changes nothing)."""
    if config["tokenizer"]["path"]:
        return [config["tokenizer"]["path"]]
    return expand("results/corpus/{shard}.parquet", shard=get_fit_shards())


def get_proxy_output(path):
    """A proxy folder, marked temp() when proxies are deleted once all their scores exist."""
    return temp(directory(path)) if config["proxy"]["delete_after_scoring"] else directory(path)


def get_heldout_source(wildcards):
    """Held-out documents (JSONL: id, text, topic) for the local evaluation tasks."""
    path = config["evaluation"]["heldout"]["path"]
    if path:
        return path
    if config["input"]["shards"]:
        raise ValueError(
            "evaluation.heldout.path is null but input.shards is set: the tasks climb_heldout_bpb / climb_heldout_mc "
            "need held-out documents (JSONL with id, text, topic). Set evaluation.heldout.path, or give targets other tasks."
        )
    return f"{EMBEDDED_DIR}/heldout.jsonl"


def get_eval_data(wildcards):
    """Data files the target's local tasks read (built by build_eval_data, or given in evaluation.data_files)."""
    targets = config["targets"]
    if wildcards.target not in targets:
        raise ValueError(f"target {wildcards.target!r} is not configured (targets: {sorted(targets)})")
    overrides = config["evaluation"]["data_files"]
    files = set()
    for task in targets[wildcards.target]["tasks"]:
        if task["task"] in overrides:
            files.add(overrides[task["task"]])
        elif task["task"] in LOCAL_EVAL_DATA:
            files.add(LOCAL_EVAL_DATA[task["task"]])
    return sorted(files)


def get_quality_models():
    """One fastText classifier per configured quality criterion."""
    return expand("results/quality/fasttext/{criterion}.bin", criterion=config["quality"]["criteria"])


def get_quality_classifier_inputs(wildcards):
    """The teacher's annotations to train on, or the configured pretrained models."""
    classifier = config["quality"]["classifier"]
    if classifier["source"] == "pretrained":
        return {"pretrained": [classifier["pretrained"][c] for c in config["quality"]["criteria"] if c in classifier["pretrained"]]}
    return {"annotations": "results/quality/annotations.parquet"}


def get_final_outputs():
    """Everything `rule all` builds, stage by stage."""
    return [
        "results/corpus/summary.json",
        "results/kmeans/centroids.npy",
        *get_all("results/kmeans/assign/{shard}.parquet"),
        "results/filter/summary.json",
        "results/quality/metrics.json",
        "results/clusters/stats.parquet",
        "results/clusters/superclusters.json",
        *get_all("results/tokens/{shard}.idx.parquet"),
        "results/tokens/prior.json",
    ]
