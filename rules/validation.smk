# The `validate` target (climb/validation/target_models.py): target models on each strategy's final mixture of the validation
# target, `validation.seeds` seeds each, scored on held-out tasks the search never saw; one table.


def get_validation_outputs():
    """What `snakemake validate` builds: the table (CSV, Markdown), per-seed scores, summary and report table."""
    return ["results/validation/validation_table.md", "results/validation/validation_table.csv",
            "results/validation/validation_seeds.csv", "results/validation/validation.json",
            "results/report/validation.html"]


def get_validation_strategy_target():
    target = get_validation_target()
    if target is None:
        raise ValueError("validation needs a target: configure `targets` (and search.validation_target)")
    return target


def get_validation_mixture(wildcards):
    """The final mixture of one strategy for the validation target (built by the search stage's rules)."""
    return f"results/search/{get_validation_strategy_target()}/{wildcards.strategy}/final_mixture.json"


def get_validation_mixtures():
    target = get_validation_strategy_target()
    return [f"results/search/{target}/{s}/final_mixture.json" for s in config["validation"]["strategies"]]


def get_validation_scores():
    """Scores of every target model, strategy-major and seed-minor (the table's order)."""
    return [f"results/validation/{s}/seed{k}/scores.json"
            for s in config["validation"]["strategies"] for k in range(config["validation"]["seeds"])]


def get_target_model_gpus():
    """GPUs of one target model job: validation.model's device and nproc where it sets them, else the proxies'
    (runtime keys: how the job runs, so they are resources, not params)."""
    model = config["validation"]["model"]
    return gpus_for(model.get("device", config["proxy"]["device"]), model.get("nproc", config["proxy"]["nproc"]))


def get_target_model_settings():
    """The proxy settings with validation.model applied (a typo there is named before any job runs)."""
    from climb.validation.target_models import target_model_settings

    return target_model_settings(get_result_settings("proxy"), config["validation"]["model"])


def get_target_model_seed(wildcards):
    from climb.validation.target_models import target_model_seed

    return target_model_seed(config["seed"], int(wildcards.s))


def get_validation_eval_data(wildcards):
    """Data files of the validation tasks."""
    return _task_data(config["validation"]["tasks"])


rule train_target_model:
    input:
        weights=get_validation_mixture,
        tokens="results/tokens/manifest.json",
        superclusters="results/clusters/superclusters.json",
        tokenizer="results/tokenizer",
        filters=get_filter_lists(),
    output:
        model=directory("results/validation/{strategy}/seed{s}/model"),
        training="results/validation/{strategy}/seed{s}/training.json",
    params:
        bins=get_all("results/tokens/{shard}.bin"),
        index=get_all("results/tokens/{shard}.idx.parquet"),
        settings=get_target_model_settings(),
        seed=get_target_model_seed,
    wildcard_constraints:
        strategy="|".join(STRATEGIES),
        s=r"\d+",
    threads: config["proxy"]["threads"]
    resources:
        **job_resources("train_target_model", get_target_model_gpus()),
    log:
        "results/logs/validation/{strategy}/seed{s}/train.log",
    benchmark:
        "results/benchmarks/validation/{strategy}/seed{s}/train.tsv"
    conda:
        "../envs/gpu.yaml"
    script:
        "../scripts/train_target_model.py"


rule evaluate_target_model:
    input:
        model="results/validation/{strategy}/seed{s}/model",
        data=get_validation_eval_data,
    output:
        "results/validation/{strategy}/seed{s}/scores.json",
    params:
        evaluation=get_evaluation_params(config["validation"]["tasks"]),
        tasks=config["validation"]["tasks"],
        seed=config["seed"],
    wildcard_constraints:
        strategy="|".join(STRATEGIES),
        s=r"\d+",
    threads: config["proxy"]["threads"]
    resources:
        **job_resources("evaluate_target_model", gpus_for(config["evaluation"]["device"])),
    log:
        "results/logs/validation/{strategy}/seed{s}/evaluate.log",
    benchmark:
        "results/benchmarks/validation/{strategy}/seed{s}/evaluate.tsv"
    conda:
        "../envs/gpu.yaml"
    script:
        "../scripts/evaluate_target_model.py"


rule validation_table:
    input:
        scores=get_validation_scores(),
        mixtures=get_validation_mixtures(),
    output:
        md="results/validation/validation_table.md",
        csv="results/validation/validation_table.csv",
        seeds="results/validation/validation_seeds.csv",
        json="results/validation/validation.json",
        html=report("results/report/validation.html", caption="report/validation.rst", category="6. Validation"),
    params:
        strategies=config["validation"]["strategies"],
        seeds=config["validation"]["seeds"],
        target=get_validation_target(),
        model=get_target_model_settings(),
        proxy_tokens=config["proxy"]["tokens"],
        seed=config["seed"],
    log:
        "results/logs/validation/table.log",
    benchmark:
        "results/benchmarks/validation/table.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/validation_table.py"


rule validate:
    input:
        get_validation_outputs(),
    localrule: True
