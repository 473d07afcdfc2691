rule embed:
    input:
        "results/corpus/{shard}.parquet",
    output:
        "results/embed/{shard}.npy",
    params:
        settings=get_result_settings("embed"),
    threads: 2
    resources:
        **job_resources("embed", gpus_for(config["embed"]["device"])),
    log:
        "results/logs/embed/{shard}.log",
    benchmark:
        "results/benchmarks/embed/{shard}.tsv"
    conda:
        "../envs/gpu.yaml"
    script:
        "../scripts/embed.py"
