# One proxy per mixture folder: results/search/pool/mix{i} or results/search/{target}/round{r}/mix{i}.
# The search stage writes each weights.json; these rules train the proxy and score it per target.


def get_proxy_output(path):
    """A proxy folder, marked temp() when proxies are deleted once all their scores exist."""
    return temp(directory(path)) if config["proxy"]["delete_after_scoring"] else directory(path)


def get_heldout_source(wildcards):
    """Held-out documents (JSONL: id, text, topic) for the local evaluation tasks."""
    path = config["evaluation"]["heldout"]["path"]
    if carving():
        if path:
            raise ValueError("evaluation.heldout.path and evaluation.heldout.carve are both set: the held-out documents "
                             "come from one of them (carve.values: [] to read path)")
        return "results/eval/carved.jsonl"
    if path:
        return path
    if config["input"]["shards"]:
        raise ValueError(
            "evaluation.heldout.path is null but input.shards is set: the tasks climb_heldout_bpb / climb_heldout_mc "
            "need held-out documents (JSONL with id, text, topic). Set evaluation.heldout.path, carve them from the "
            "corpus (evaluation.heldout.carve), or give targets other tasks."
        )
    return f"{EMBEDDED_DIR}/heldout.jsonl"


def _task_data(tasks):
    """Data files these local tasks read (built by build_eval_data, or given in evaluation.data_files)."""
    overrides = config["evaluation"]["data_files"]
    files = set()
    for task in tasks:
        if task["task"] in overrides:
            files.add(overrides[task["task"]])
        elif task["task"] in LOCAL_EVAL_DATA:
            files.add(LOCAL_EVAL_DATA[task["task"]])
    return sorted(files)


def get_eval_data(wildcards):
    """Data files the target's local tasks read."""
    targets = config["targets"]
    if wildcards.target not in targets:
        raise ValueError(f"target {wildcards.target!r} is not configured (targets: {sorted(targets)})")
    return _task_data(targets[wildcards.target]["tasks"])


def get_proxy_seed(wildcards):
    """The search's seed; noise-floor replicate j trains with its own (climb.search.signal.replicate_seed)."""
    from climb.search.signal import replicate_seed

    replicate = re.fullmatch(r"pool/replicate(\d+)", wildcards.mixdir)
    return replicate_seed(config["seed"], int(replicate.group(1))) if replicate else config["seed"]


def get_evaluation_params(tasks):
    """lm-eval's result keys for scoring on ``tasks``: data file overrides of other tasks left out."""
    names = {t["task"] for t in tasks}
    return {**get_result_settings("evaluation", exclude=("data_files",)),
            "data_files": {k: v for k, v in config["evaluation"]["data_files"].items() if k in names}}


def get_target_evaluation(wildcards):
    return get_evaluation_params(get_target_tasks(wildcards))


def get_target_tasks(wildcards):
    """The task metrics of one target: a proxy's score on it depends on those alone, not on other targets."""
    if wildcards.target not in config["targets"]:
        raise ValueError(f"target {wildcards.target!r} is not configured (targets: {sorted(config['targets'])})")
    return config["targets"][wildcards.target]["tasks"]


wildcard_constraints:
    mixdir=r"(?:pool/mix\d+|pool/replicate\d+|[^/]+/round\d+/mix\d+|doremi/reference)",
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
    log:
        "results/logs/search/{mixdir}/evaluate_{target}.log",
    benchmark:
        "results/benchmarks/search/{mixdir}/evaluate_{target}.tsv"
    conda:
        "../envs/gpu.yaml"
    script:
        "../scripts/evaluate_proxy.py"
