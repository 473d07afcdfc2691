# Stage 2: embed every shard, fit k-means on the fit shards' embeddings, assign every shard.


include: "cluster_inputs.smk"


rule embed:
    input:
        "results/corpus/{shard}.parquet",
    output:
        "results/embed/{shard}.npy",
    params:
        settings=get_result_settings("embed"),
    threads: get_spread_threads(len(SHARDS))  # on 2 cores two 1-thread jobs embed ~20% more docs/s than one 2-thread
    resources:
        **shard_resources("embed", gpus_for(config["embed"]["device"])),
    log:
        "results/logs/embed/{shard}.log",
    benchmark:
        "results/benchmarks/embed/{shard}.tsv"
    conda:
        "../envs/gpu.yaml"
    script:
        "../scripts/embed.py"


rule fit_kmeans:
    input:
        get_fit_embeddings,
    output:
        centroids="results/kmeans/centroids.npy",
        report="results/kmeans/fit.json",
    params:
        settings=get_result_settings("cluster"),
        seed=config["seed"],
    threads: 2
    resources:
        **job_resources("fit_kmeans", gpus_for({"no": "cpu"}.get(config["cluster"]["gpu"], "auto"))),
    priority: SEARCH_INPUT_PRIORITY
    log:
        "results/logs/fit_kmeans.log",
    benchmark:
        "results/benchmarks/fit_kmeans.tsv"
    conda:
        "../envs/gpu.yaml"
    script:
        "../scripts/fit_kmeans.py"


rule assign_clusters:
    input:
        corpus="results/corpus/{shard}.parquet",
        embeddings="results/embed/{shard}.npy",
        centroids="results/kmeans/centroids.npy",
    output:
        "results/kmeans/assign/{shard}.parquet",
    threads: 1
    resources:
        **shard_resources("assign_clusters", 0),
    log:
        "results/logs/assign_clusters/{shard}.log",
    benchmark:
        "results/benchmarks/assign_clusters/{shard}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/assign_clusters.py"
