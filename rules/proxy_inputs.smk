# Input functions and params of the rules in rules/proxy.smk.


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
    """The search's seed; noise-floor replicate and contrast j train with seed j (climb.search.signal.replicate_seed)."""
    from climb.search.signal import replicate_seed

    replicate = re.fullmatch(r"pool/(?:replicate|contrast)(\d+)", wildcards.mixdir)
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
