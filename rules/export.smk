# ClimbMix (weighted, shuffled parts + manifest), ClimbLab (whole usable corpus by super-cluster) and blends.


include: "export_inputs.smk"


rule climbmix_plan:
    input:
        index=get_all("results/tokens/{shard}.idx.parquet"),
        superclusters="results/clusters/superclusters.json",
        filters=get_filter_lists(),
        mixture=get_export_mixture(),
    output:
        "results/export/plan.json",
    params:
        settings={
            "token_budget": config["export"]["token_budget"],
            "part_tokens": config["export"]["part_tokens"],
            "max_epochs": config["export"]["max_epochs"],
            "seed": config["seed"],
        },
    log:
        "results/logs/export/plan.log",
    benchmark:
        "results/benchmarks/export/plan.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/export_plan.py"


rule climbmix_select:
    input:
        corpus="results/corpus/{shard}.parquet",
        index="results/tokens/{shard}.idx.parquet",
        superclusters="results/clusters/superclusters.json",
        filters=get_filter_lists(),
        plan="results/export/plan.json",
    output:
        temp("results/export/select/{shard}.parquet"),
    params:
        batch_rows=config["export"]["batch_rows"],
    resources:
        **shard_resources("climbmix_select"),
    log:
        "results/logs/export/select/{shard}.log",
    benchmark:
        "results/benchmarks/export/select/{shard}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/export_select.py"


rule climbmix:
    input:
        select=get_all("results/export/select/{shard}.parquet"),
        plan="results/export/plan.json",
        mixture=get_export_mixture(),
    output:
        parts=get_climbmix_parts(),
        manifest="results/climbmix/manifest.json",
    log:
        "results/logs/export/climbmix.log",
    benchmark:
        "results/benchmarks/export/climbmix.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/export_climbmix.py"


rule climblab:
    input:
        corpus=get_all("results/corpus/{shard}.parquet"),
        index=get_all("results/tokens/{shard}.idx.parquet"),
        superclusters="results/clusters/superclusters.json",
        filters=get_filter_lists(),
    output:
        directory("results/climblab"),
    params:
        batch_rows=config["export"]["batch_rows"],
    log:
        "results/logs/export/climblab.log",
    benchmark:
        "results/benchmarks/export/climblab.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/export_climblab.py"


rule blend:
    input:
        mixture=get_export_mixture(),
        superclusters="results/clusters/superclusters.json",
    output:
        megatron="results/blend/megatron_data_path.txt",
        weights="results/blend/weights.json",
    params:
        megatron_prefix=lambda wildcards: config["export"]["megatron_prefix"],  # a function: {name} is not a wildcard
    log:
        "results/logs/export/blend.log",
    benchmark:
        "results/benchmarks/export/blend.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/blend.py"
