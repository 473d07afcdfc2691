# Stage 1: read every input shard into Parquet (ingest), rejects quarantined with their reason; one corpus summary.


include: "corpus_inputs.smk"


if not config["input"]["shards"]:

    rule build_embedded_corpus:
        output:
            shards=expand(f"{EMBEDDED_DIR}/{{name}}.jsonl", name=list(INPUT_SHARDS)),
            heldout=f"{EMBEDDED_DIR}/heldout.jsonl",
            manifest=f"{EMBEDDED_DIR}/manifest.json",
        params:
            settings=get_result_settings("input.embedded"),
            seed=config["seed"],
        threads: 2  # parses the installed packages' source files in 2 processes
        log:
            "results/logs/build_embedded_corpus.log",
        benchmark:
            "results/benchmarks/build_embedded_corpus.tsv"
        conda:
            "../envs/cpu.yaml"
        script:
            "../scripts/build_embedded_corpus.py"


rule ingest:
    input:
        get_shard_paths,
    output:
        corpus="results/corpus/{shard}.parquet",
        rejects="results/corpus/rejects/{shard}.jsonl",
        counts="results/corpus/counts/{shard}.json",
    params:
        text_field=config["input"]["text_field"],
        id_field=config["input"]["id_field"],
        origin_field=config["input"]["origin_field"],
        settings=get_result_settings("ingest"),
    resources:
        **shard_resources("ingest"),
    log:
        "results/logs/ingest/{shard}.log",
    benchmark:
        "results/benchmarks/ingest/{shard}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/ingest.py"


rule summarize_corpus:
    input:
        counts=get_all("results/corpus/counts/{shard}.json"),
        corpus=get_all("results/corpus/{shard}.parquet"),
    output:
        "results/corpus/summary.json",
    log:
        "results/logs/summarize_corpus.log",
    benchmark:
        "results/benchmarks/summarize_corpus.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/summarize_corpus.py"
