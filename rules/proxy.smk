# One proxy per mixture folder: results/search/pool/mix{i} or results/search/{target}/round{r}/mix{i}.
# The search stage writes each weights.json; these rules train the proxy and score it per target.


include: "proxy_inputs.smk"


wildcard_constraints:
    mixdir=r"(?:pool/mix\d+|pool/replicate\d+|pool/contrast\d+|[^/]+/round\d+/mix\d+|doremi/reference)",
    target=r"[^/]+",


rule build_eval_data:
    input:
        get_heldout_source,
    output:
        bpb="results/eval/heldout_bpb.jsonl",
        mc="results/eval/heldout_mc.jsonl",
        validation_bpb="results/eval/validation_bpb.jsonl",
        validation_mc="results/eval/validation_mc.jsonl",
    params:
        settings=get_result_settings("evaluation.heldout"),
        seed=config["seed"],
    log:
        "results/logs/build_eval_data.log",
    benchmark:
        "results/benchmarks/build_eval_data.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/build_eval_data.py"


rule train_proxy:
    input:
        weights="results/search/{mixdir}/weights.json",
        tokens="results/tokens/manifest.json",
        superclusters="results/clusters/superclusters.json",
        tokenizer="results/tokenizer",
        filters=get_filter_lists(),
    output:
        proxy=get_proxy_output("results/search/{mixdir}/proxy"),
        training="results/search/{mixdir}/training.json",
    params:
        bins=get_all("results/tokens/{shard}.bin"),
        index=get_all("results/tokens/{shard}.idx.parquet"),
        settings=get_result_settings("proxy"),
        seed=get_proxy_seed,
    threads: config["proxy"]["threads"]
    resources:
        **job_resources("train_proxy", gpus_for(config["proxy"]["device"], config["proxy"]["nproc"])),
    priority: SEARCH_LOOP_PRIORITY
    log:
        "results/logs/search/{mixdir}/train_proxy.log",
    benchmark:
        "results/benchmarks/search/{mixdir}/train_proxy.tsv"
    conda:
        "../envs/gpu.yaml"
    script:
        "../scripts/train_proxy.py"


rule evaluate_proxy:
    input:
        proxy="results/search/{mixdir}/proxy",
        data=get_eval_data,
    output:
        "results/search/{mixdir}/scores/{target}.json",
    params:
        evaluation=get_target_evaluation,
        tasks=get_target_tasks,
        seed=config["seed"],
    threads: config["proxy"]["threads"]
    resources:
        **job_resources("evaluate_proxy", gpus_for(config["evaluation"]["device"])),
    priority: SEARCH_LOOP_PRIORITY
    log:
        "results/logs/search/{mixdir}/evaluate_{target}.log",
    benchmark:
        "results/benchmarks/search/{mixdir}/evaluate_{target}.tsv"
    conda:
        "../envs/gpu.yaml"
    script:
        "../scripts/evaluate_proxy.py"
