# Filters applied after ingest (docs/design.md): semantic dedup inside k-means clusters, one job per cluster group,
# and decontamination against the configured targets' evaluation tasks, one job per shard. Each writes an id
# list (`id`, `reason`); get_filter_lists() hands them to the proxies' sampler and to export.


def get_filter_parts():
    """The id lists the filter jobs write (one per dedup group, one per shard for decontamination)."""
    return get_dedup_lists() + get_decontam_lists() + get_carve_lists() + get_quality_filter_lists()


def get_filter_lists():
    """Documents removed after ingest (dedup, decontamination), merged into one id list; applied when proxies
    sample and export reads. One file, so those jobs do not depend on every filter job."""
    return ["results/filter/removed.parquet"] if get_filter_parts() else []


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


def get_carve_lists():
    return get_all("results/filter/heldout/{shard}.parquet") if carving() else []


def get_quality_filter_lists():
    """Per-shard lists of documents below a document threshold (prune.document_thresholds; none when empty)."""
    return get_all("results/filter/quality/{shard}.parquet") if config["prune"]["document_thresholds"] else []


def get_decontam_lists():
    if not config["decontam"]["enabled"]:
        return []
    return get_all("results/filter/decontam/{shard}.parquet")


def get_decontam_tasks():
    """Every task (or group) of every configured target, plus decontam.tasks."""
    from climb.filter.decontam import target_tasks

    # Validation tasks too, except the embedded held-out ones when there are no held-out documents to build them from.
    heldout = bool(config["evaluation"]["heldout"]["path"]) or not config["input"]["shards"] or carving()
    validation = [t["task"] for t in config["validation"]["tasks"]
                  if heldout or t["task"] not in LOCAL_EVAL_DATA or t["task"] in config["evaluation"]["data_files"]]
    return sorted(set(target_tasks(config["targets"])) | set(config["decontam"]["tasks"]) | set(validation))


def get_decontam_index_inputs(wildcards):
    """Evaluation data the pipeline builds itself (results/...) that the decontaminated tasks read."""
    from climb.filter.decontam import task_data_files
    from climb.proxy.evaluate import include_paths

    files = task_data_files(get_decontam_tasks(), include_paths(config["evaluation"]),
                            config["evaluation"]["data_files"])
    return [f for f in files if f.startswith("results/")]


wildcard_constraints:
    group=r"\d+",


rule cluster_manifest:
    input:
        assign=get_all("results/kmeans/assign/{shard}.parquet"),
        embed=get_all("results/embed/{shard}.npy"),
    output:
        "results/kmeans/manifest.json",
    log:
        "results/logs/cluster_manifest.log",
    benchmark:
        "results/benchmarks/cluster_manifest.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/file_manifest.py"


rule dedup:
    input:
        "results/kmeans/manifest.json",
    output:
        filter="results/filter/dedup/{group}.parquet",
        counts="results/filter/dedup/counts/{group}.json",
    params:
        assign=get_all("results/kmeans/assign/{shard}.parquet"),
        embed=get_all("results/embed/{shard}.npy"),
        n_groups=get_dedup_n_groups(),
        threshold=config["dedup"]["threshold"],
    threads: 2
    resources:
        **job_resources("dedup", gpus_for(config["dedup"]["device"])),
    log:
        "results/logs/filter/dedup/{group}.log",
    benchmark:
        "results/benchmarks/filter/dedup/{group}.tsv"
    conda:
        "../envs/gpu.yaml"
    script:
        "../scripts/dedup.py"


rule decontam_index:
    input:
        get_decontam_index_inputs,
    output:
        index="results/filter/decontam_index/ngrams.parquet",
        stats="results/filter/decontam_index/tasks.json",
    params:
        tasks=get_decontam_tasks(),
        ngram=config["decontam"]["ngram"],
        evaluation={key: config["evaluation"][key] for key in ("include_paths", "data_files")},
    log:
        "results/logs/filter/decontam_index.log",
    benchmark:
        "results/benchmarks/filter/decontam_index.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/decontam_index.py"


rule decontam:
    input:
        corpus="results/corpus/{shard}.parquet",
        index="results/filter/decontam_index/ngrams.parquet",
    output:
        "results/filter/decontam/{shard}.parquet",
    params:
        ngram=config["decontam"]["ngram"],
    log:
        "results/logs/filter/decontam/{shard}.log",
    benchmark:
        "results/benchmarks/filter/decontam/{shard}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/decontam.py"


rule filter_summary:
    input:
        counts=get_all("results/corpus/counts/{shard}.json"),
        corpus=get_all("results/corpus/{shard}.parquet"),
        dedup=get_dedup_lists(),
        dedup_counts=get_dedup_counts(),
        decontam=get_decontam_lists(),
        heldout=get_carve_lists(),
        quality=get_quality_filter_lists(),
    output:
        "results/filter/summary.json",
    log:
        "results/logs/filter/summary.log",
    benchmark:
        "results/benchmarks/filter/summary.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/filter_summary.py"


rule merge_filters:
    input:
        get_filter_parts(),
    output:
        "results/filter/removed.parquet",
    log:
        "results/logs/filter/merge_filters.log",
    benchmark:
        "results/benchmarks/filter/merge_filters.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/merge_filters.py"


rule carve_heldout:
    input:
        "results/corpus/{shard}.parquet",
    output:
        ids="results/filter/heldout/{shard}.parquet",
        docs="results/eval/carved/{shard}.jsonl",
    params:
        carve=get_result_settings("evaluation.heldout.carve"),
        topic=config["evaluation"]["heldout"]["topic"],
        seed=config["seed"],
    log:
        "results/logs/filter/heldout/{shard}.log",
    benchmark:
        "results/benchmarks/filter/heldout/{shard}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/carve_heldout.py"


rule collect_heldout:
    input:
        get_all("results/eval/carved/{shard}.jsonl"),
    output:
        "results/eval/carved.jsonl",
    log:
        "results/logs/filter/heldout/collect.log",
    benchmark:
        "results/benchmarks/filter/heldout/collect.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/collect_heldout.py"


rule quality_filter:
    input:
        "results/quality/scores/{shard}.parquet",
    output:
        "results/filter/quality/{shard}.parquet",
    params:
        thresholds=config["prune"]["document_thresholds"],
    log:
        "results/logs/filter/quality/{shard}.log",
    benchmark:
        "results/benchmarks/filter/quality/{shard}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/quality_filter.py"
