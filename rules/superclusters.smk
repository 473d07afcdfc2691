rule cluster_quality_sums:
    input:
        assign="results/kmeans/assign/{shard}.parquet",
        scores="results/quality/scores/{shard}.parquet",
        corpus="results/corpus/{shard}.parquet",
        centroids="results/kmeans/centroids.npy",
    output:
        "results/clusters/sums/{shard}.parquet",
    params:
        criteria=config["quality"]["criteria"],
    resources:
        **shard_resources("cluster_quality_sums"),
    log:
        "results/logs/clusters/sums/{shard}.log",
    benchmark:
        "results/benchmarks/clusters/sums/{shard}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/cluster_quality_sums.py"


rule superclusters:
    input:
        sums=get_all("results/clusters/sums/{shard}.parquet"),
        centroids="results/kmeans/centroids.npy",
    output:
        stats="results/clusters/stats.parquet",
        superclusters="results/clusters/superclusters.json",
    params:
        criteria=config["quality"]["criteria"],
        prune=get_result_settings("prune", exclude=("document_thresholds",)),
        merge=get_result_settings("merge"),
    log:
        "results/logs/clusters/superclusters.log",
    benchmark:
        "results/benchmarks/clusters/superclusters.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/superclusters.py"
