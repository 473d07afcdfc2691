# Filters applied after ingest (docs/design.md): semantic dedup inside k-means clusters, one job per cluster group,
# and decontamination against the configured targets' evaluation tasks, one job per shard. Each writes an id
# list (`id`, `reason`); get_filter_lists() hands them to the proxies' sampler and to export.


include: "filter_inputs.smk"


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
    threads: get_spread_threads(get_dedup_n_groups())  # the groups side by side; at 2 each they ran one at a time
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
    resources:
        **shard_resources("decontam"),
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
    resources:
        **shard_resources("carve_heldout"),
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
    resources:
        **shard_resources("quality_filter"),
    log:
        "results/logs/filter/quality/{shard}.log",
    benchmark:
        "results/benchmarks/filter/quality/{shard}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/quality_filter.py"
