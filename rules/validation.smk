# The `validate` target (climb/validation/target_models.py): target models on each strategy's final mixture of the validation
# target, `validation.seeds` seeds each, scored on held-out tasks the search never saw; one table.


include: "validation_inputs.smk"


rule validation_mixture:
    input:
        get_validation_mixture,
    output:
        "results/validation/{strategy}/mixture.json",
    wildcard_constraints:
        strategy="|".join(STRATEGIES),
    localrule: True
    log:
        "results/logs/validation/{strategy}/mixture.log",
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/validation_mixture.py"


rule train_target_model:
    input:
        weights="results/validation/{strategy}/mixture.json",
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
