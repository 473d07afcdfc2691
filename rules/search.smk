# The bi-level search (docs/design.md). Pool mixtures are target-independent; each searched target
# runs its own rounds on top of the pool's first rounds[0]. Mixture counts come from config, so `snakemake -n`
# shows every proxy of every round; the weights themselves are data.


include: "search_inputs.smk"


rule sample_pool_mixture:
    input:
        prior="results/tokens/prior.json",
    output:
        "results/search/pool/mix{i}/weights.json",
    params:
        search=get_sampler_params(),
        seed=config["seed"],
    wildcard_constraints:
        i=r"\d+",
    localrule: True
    priority: SEARCH_LOOP_PRIORITY
    log:
        "results/logs/search/pool/mix{i}/sample.log",
    benchmark:
        "results/benchmarks/search/pool/mix{i}/sample.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/search_pool.py"


rule natural_replicate:
    input:
        prior="results/tokens/prior.json",
    output:
        "results/search/pool/replicate{j}/weights.json",
    wildcard_constraints:
        j=r"\d+",
    localrule: True
    priority: SEARCH_LOOP_PRIORITY
    log:
        "results/logs/search/pool/replicate{j}/write.log",
    benchmark:
        "results/benchmarks/search/pool/replicate{j}/write.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/search_replicate.py"


rule contrast_replicate:
    input:
        pool="results/search/pool/mix0/weights.json",
    output:
        "results/search/pool/contrast{j}/weights.json",
    wildcard_constraints:
        j=r"[1-9]\d*",
    localrule: True
    priority: SEARCH_LOOP_PRIORITY
    log:
        "results/logs/search/pool/contrast{j}/write.log",
    benchmark:
        "results/benchmarks/search/pool/contrast{j}/write.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/search_contrast.py"


rule fit_round_predictor:
    input:
        unpack(get_round_history),
        prior="results/tokens/prior.json",
    output:
        model="results/search/{target}/round{r}/predictor.txt",
        summary="results/search/{target}/round{r}/predictor.json",
    params:
        search=get_predictor_params(),
        seed=config["seed"],
    wildcard_constraints:
        r=r"\d+",
    priority: SEARCH_LOOP_PRIORITY
    log:
        "results/logs/search/{target}/round{r}/fit_predictor.log",
    benchmark:
        "results/benchmarks/search/{target}/round{r}/fit_predictor.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/search_fit.py"


rule propose_round:
    input:
        unpack(get_proposal_inputs),
        prior="results/tokens/prior.json",
    output:
        "results/search/{target}/round{r}/proposals.json",
    params:
        search=get_proposal_params,
        seed=config["seed"],
    wildcard_constraints:
        r=r"[2-9]|[1-9]\d+",
    priority: SEARCH_LOOP_PRIORITY
    log:
        "results/logs/search/{target}/round{r}/propose.log",
    benchmark:
        "results/benchmarks/search/{target}/round{r}/propose.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/search_propose.py"


rule split_proposal:
    input:
        "results/search/{target}/round{r}/proposals.json",
    output:
        "results/search/{target}/round{r}/mix{i}/weights.json",
    wildcard_constraints:
        r=r"[2-9]|[1-9]\d+",
        i=r"\d+",
    localrule: True
    priority: SEARCH_LOOP_PRIORITY
    log:
        "results/logs/search/{target}/round{r}/mix{i}/split.log",
    benchmark:
        "results/benchmarks/search/{target}/round{r}/mix{i}/split.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/search_split.py"


rule fit_regmix_predictor:
    input:
        unpack(get_regmix_history),
        prior="results/tokens/prior.json",
    output:
        model="results/search/{target}/regmix/predictor.txt",
        summary="results/search/{target}/regmix/predictor.json",
    params:
        search=get_regmix_predictor_params(),
        seed=config["seed"],
    log:
        "results/logs/search/{target}/regmix/fit_predictor.log",
    benchmark:
        "results/benchmarks/search/{target}/regmix/fit_predictor.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/search_regmix.py"


rule final_mixture:
    input:
        unpack(get_final_inputs),
        prior="results/tokens/prior.json",
    output:
        "results/search/{target}/{strategy}/final_mixture.json",
    params:
        search=get_final_params,
        seed=config["seed"],
    wildcard_constraints:
        strategy="|".join(SEARCH_STRATEGIES),
    log:
        "results/logs/search/{target}/{strategy}/final_mixture.log",
    benchmark:
        "results/benchmarks/search/{target}/{strategy}/final_mixture.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/search_final.py"


# DoReMi (climb/search/doremi.py): a reference proxy on the natural mixture (trained by rule train_proxy, mixdir
# doremi/reference), then a Group DRO proxy of the same size and token budget; its averaged domain weights are the
# doremi final mixture of every target (DoReMi does not look at the target).


rule doremi_reference_mixture:
    input:
        prior="results/tokens/prior.json",
    output:
        "results/search/doremi/reference/weights.json",
    localrule: True
    log:
        "results/logs/search/doremi/reference/mixture.log",
    benchmark:
        "results/benchmarks/search/doremi/reference/mixture.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/doremi_reference.py"


rule train_doremi_proxy:
    input:
        weights="results/search/doremi/reference/weights.json",
        reference="results/search/doremi/reference/proxy",
        tokens="results/tokens/manifest.json",
        superclusters="results/clusters/superclusters.json",
        tokenizer="results/tokenizer",
        filters=get_filter_lists(),
    output:
        proxy=temp(directory("results/search/doremi/dro/proxy")),
        training="results/search/doremi/dro/training.json",
    params:
        bins=get_all("results/tokens/{shard}.bin"),
        index=get_all("results/tokens/{shard}.idx.parquet"),
        settings=get_result_settings("proxy"),
        doremi={"step_size": config["doremi"]["step_size"], "smoothing": config["doremi"]["smoothing"]},
        seed=config["seed"],
    threads: config["proxy"]["threads"]
    resources:
        **job_resources("train_doremi_proxy", gpus_for(config["proxy"]["device"], config["proxy"]["nproc"])),
    log:
        "results/logs/search/doremi/dro/train_proxy.log",
    benchmark:
        "results/benchmarks/search/doremi/dro/train_proxy.tsv"
    conda:
        "../envs/gpu.yaml"
    script:
        "../scripts/train_doremi_proxy.py"


rule doremi_final_mixture:
    input:
        dro="results/search/doremi/dro/training.json",
        reference="results/search/doremi/reference/training.json",
        prior="results/tokens/prior.json",
    output:
        "results/search/{target}/doremi/final_mixture.json",
    localrule: True
    log:
        "results/logs/search/{target}/doremi/final_mixture.log",
    benchmark:
        "results/benchmarks/search/{target}/doremi/final_mixture.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/doremi_final.py"
