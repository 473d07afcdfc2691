# Tokens: a BPE tokenizer trained on the corpus, every shard tokenized, the token prior and the token manifest.


include: "tokens_inputs.smk"


rule train_tokenizer:
    input:
        get_tokenizer_inputs,
    output:
        directory("results/tokenizer"),
    params:
        settings=get_result_settings("tokenizer"),
        seed=config["seed"],
    threads: 2
    priority: SEARCH_INPUT_PRIORITY
    log:
        "results/logs/train_tokenizer.log",
    benchmark:
        "results/benchmarks/train_tokenizer.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/train_tokenizer.py"


rule tokenize:
    input:
        corpus="results/corpus/{shard}.parquet",
        assign="results/kmeans/assign/{shard}.parquet",
        tokenizer="results/tokenizer",
    output:
        bin="results/tokens/{shard}.bin",
        index="results/tokens/{shard}.idx.parquet",
    threads: 1
    resources:
        **shard_resources("tokenize"),
    log:
        "results/logs/tokenize/{shard}.log",
    benchmark:
        "results/benchmarks/tokenize/{shard}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/tokenize_shard.py"


rule token_prior:
    input:
        index=get_all("results/tokens/{shard}.idx.parquet"),
        superclusters="results/clusters/superclusters.json",
        filters=get_filter_lists(),
    output:
        "results/tokens/prior.json",
    log:
        "results/logs/token_prior.log",
    benchmark:
        "results/benchmarks/token_prior.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/token_prior.py"


rule token_manifest:
    input:
        get_all("results/tokens/{shard}.bin"),
        get_all("results/tokens/{shard}.idx.parquet"),
    output:
        "results/tokens/manifest.json",
    log:
        "results/logs/token_manifest.log",
    benchmark:
        "results/benchmarks/token_manifest.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/file_manifest.py"
