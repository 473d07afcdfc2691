# Input functions and params of the rules in rules/validation.smk.


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
