import re

from climb.config import result_settings
from climb.export import n_parts
from climb.placement import gpus_for, job_resources
from climb.shards import embedded_shards, resolve_shards, select_fit_shards

EMBEDDED_DIR = "results/embedded"


def get_result_settings(section, exclude=()):
    """A rule's params from one config section: its result keys (x-effect: result in the schema), one by one.
    Runtime keys (batch sizes, threads, devices, ...) are not params: a job reads them from its own config
    (climb.config.runtime_settings), so changing one reruns nothing."""
    return result_settings(config, section, exclude)


def get_input_shards():
    """{shard name: input path}; the embedded default corpus when `input.shards` is empty."""
    if config["input"]["shards"]:
        return resolve_shards(config["input"]["shards"])
    return embedded_shards(config["input"]["embedded"]["n_shards"], EMBEDDED_DIR)


SHARDS = get_input_shards()


wildcard_constraints:
    shard="|".join(re.escape(name) for name in SHARDS),


def get_shard_path(wildcards):
    return SHARDS[wildcards.shard]


def get_fit_shards():
    return select_fit_shards(list(SHARDS), config["cluster"]["fit_shards"])


def get_fit_corpus(wildcards):
    """The corpus of the fit shards: the teacher's sample is drawn from them, so an added shard changes nothing."""
    return expand("results/corpus/{shard}.parquet", shard=get_fit_shards())


def get_fit_embeddings(wildcards):
    return expand("results/embed/{shard}.npy", shard=get_fit_shards())


def get_all(pattern):
    """`pattern` expanded over every input shard."""
    return expand(pattern, shard=list(SHARDS))


def get_filter_parts():
    """The id lists the filter jobs write (one per dedup group, one per shard for decontamination)."""
    return get_dedup_lists() + get_decontam_lists() + get_carve_lists() + get_quality_filter_lists()


def get_filter_lists():
    """Documents removed after ingest (dedup, decontamination), merged into one id list; applied when proxies
    sample and export reads. One file, so those jobs do not depend on every filter job."""
    return ["results/filter/removed.parquet"] if get_filter_parts() else []


def get_dedup_n_groups():
    """Dedup jobs: cluster c goes to group c mod n (no more groups than clusters)."""
    return min(config["dedup"]["n_groups"], config["cluster"]["k"])


def get_dedup_lists():
    if not config["dedup"]["enabled"]:
        return []
    return expand("results/filter/dedup/{group}.parquet", group=range(get_dedup_n_groups()))


def get_dedup_counts():
    if not config["dedup"]["enabled"]:
        return []
    return expand("results/filter/dedup/counts/{group}.json", group=range(get_dedup_n_groups()))


def carving():
    """Whether held-out target documents are carved from the corpus (evaluation.heldout.carve.values)."""
    return bool(config["evaluation"]["heldout"]["carve"]["values"])


def get_carve_lists():
    return get_all("results/filter/heldout/{shard}.parquet") if carving() else []


def get_quality_filter_lists():
    """Per-shard lists of documents below a document threshold (prune.document_thresholds; none when empty)."""
    return get_all("results/filter/quality/{shard}.parquet") if config["prune"]["document_thresholds"] else []


def get_decontam_lists():
    if not config["decontam"]["enabled"]:
        return []
    return get_all("results/filter/decontam/{shard}.parquet")


def get_decontam_tasks():
    """Every task (or group) of every configured target, plus decontam.tasks."""
    from climb.decontam import target_tasks

    # Validation tasks too, except the embedded held-out ones when there are no held-out documents to build them from.
    heldout = bool(config["evaluation"]["heldout"]["path"]) or not config["input"]["shards"] or carving()
    validation = [t["task"] for t in config["validation"]["tasks"]
                  if heldout or t["task"] not in LOCAL_EVAL_DATA or t["task"] in config["evaluation"]["data_files"]]
    return sorted(set(target_tasks(config["targets"])) | set(config["decontam"]["tasks"]) | set(validation))


def get_decontam_index_inputs(wildcards):
    """Evaluation data the pipeline builds itself (results/...) that the decontaminated tasks read."""
    from climb.decontam import task_data_files
    from climb.evaluate import include_paths

    files = task_data_files(get_decontam_tasks(), include_paths(config["evaluation"]),
                            config["evaluation"]["data_files"])
    return [f for f in files if f.startswith("results/")]


LOCAL_EVAL_DATA = {
    "climb_heldout_bpb": "results/eval/heldout_bpb.jsonl",
    "climb_heldout_mc": "results/eval/heldout_mc.jsonl",
    "climb_validation_bpb": "results/eval/validation_bpb.jsonl",
    "climb_validation_mc": "results/eval/validation_mc.jsonl",
}


def get_tokenizer_inputs(wildcards):
    """The configured tokenizer folder, or the fit shards' corpus to train the BPE on (so a new shard changes nothing)."""
    if config["tokenizer"]["path"]:
        return [config["tokenizer"]["path"]]
    return get_fit_corpus(wildcards)


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


def get_quality_models():
    """One fastText classifier per configured quality criterion."""
    return expand("results/quality/fasttext/{criterion}.bin", criterion=config["quality"]["criteria"])


def get_quality_classifier_inputs(wildcards):
    """The teacher's annotations to train on, or the configured pretrained models."""
    classifier = config["quality"]["classifier"]
    if classifier["source"] == "pretrained":
        return {"pretrained": [classifier["pretrained"][c] for c in config["quality"]["criteria"] if c in classifier["pretrained"]]}
    return {"annotations": "results/quality/annotations.parquet"}


def get_export_target():
    """The target whose final mixture is exported: export.target, else the first searched target."""
    target = config["export"]["target"] or (get_search_targets() or list(config["targets"]))[0]
    if target not in config["targets"]:
        raise ValueError(f"export.target {target!r} is not configured (targets: {sorted(config['targets'])})")
    return target


def get_export_mixture():
    """The weights exported: the search's final mixture (default), the token prior, or a given JSON file."""
    mixture = config["export"]["mixture"]
    if mixture == "search":
        return f"results/search/{get_export_target()}/{config['export']['strategy']}/final_mixture.json"
    if mixture == "prior":
        return "results/tokens/prior.json"
    return mixture


def get_climbmix_parts():
    """ClimbMix part files; their number is fixed by export.token_budget / export.part_tokens."""
    parts = n_parts(config["export"]["token_budget"], config["export"]["part_tokens"])
    return [f"results/climbmix/part-{n:05d}.parquet" for n in range(parts)]


def get_export_outputs():
    """ClimbMix, blends and (when export.climblab) ClimbLab."""
    outputs = ["results/climbmix/manifest.json", "results/blend/megatron_data_path.txt", "results/blend/weights.json"]
    if config["export"]["climblab"]:
        outputs.append("results/climblab")
    return outputs


def get_report_outputs():
    """Plots and tables of the HTML report (`snakemake --report report.html`)."""
    return [
        "results/report/cluster_sizes.png",
        "results/report/centroid_map.png",
        "results/report/pruning.png",
        "results/report/pruning.html",
        "results/report/quality_scores.png",
        "results/report/quality_scores.html",
        "results/report/superclusters.png",
        "results/report/superclusters.html",
        "results/report/final_vs_prior.png",
        *(get_report_search_outputs() if config["export"]["mixture"] == "search" else []),
    ]


def get_report_search_outputs():
    """The search plots of the exported target and strategy."""
    return ["results/report/search_mixtures.png", "results/report/search_predicted.png",
            "results/report/search_objective.png", "results/report/search_signal.html"]


def get_report_search_summaries():
    """Every round's predictor summary (signal, skill) of the exported target."""
    target = get_export_target()
    return [f"results/search/{target}/round{r}/predictor.json" for r in range(1, len(config["search"]["rounds"]) + 1)]


def get_report_search_inputs(wildcards):
    """Weights and scores of every mixture evaluated for the exported target (rounds 1..n), and its final mixture."""
    target = get_export_target()
    last = len(config["search"]["rounds"])
    dirs = [d for r in range(1, last + 1) for d in _search_round_dirs(target, r)]
    return {**_search_history(target, dirs), "final": get_export_mixture(),
            "model": f"results/search/{target}/round{last}/predictor.txt"}


def get_report_search_rounds():
    """The round of each mixture get_report_search_inputs lists."""
    return [r for r, n in enumerate(config["search"]["rounds"], start=1) for _ in range(n)]


def get_final_outputs():
    """Everything `rule all` builds, stage by stage."""
    return [
        "results/corpus/summary.json",
        "results/kmeans/centroids.npy",
        *get_all("results/kmeans/assign/{shard}.parquet"),
        "results/filter/summary.json",
        *get_all("results/tokens/{shard}.idx.parquet"),
        "results/tokens/prior.json",
        "results/quality/metrics.json",
        "results/clusters/stats.parquet",
        "results/clusters/superclusters.json",
        *get_search_finals(),
        *get_export_outputs(),
        *get_report_outputs(),
        *(get_validation_outputs() if config["validation"]["in_all"] else []),
    ]


# --- search (rules/search.smk) ---

def get_search_targets():
    """Targets the search runs for: `search.targets`, or every configured target."""
    names = config["search"]["targets"]
    names = list(config["targets"]) if names is None else list(names)
    for name in names:
        if name not in config["targets"]:
            raise ValueError(f"search.targets names {name!r}, which is not under `targets` ({sorted(config['targets'])})")
        if name == "pool" or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ValueError(f"target name {name!r} cannot be a search folder (not 'pool'; letters, digits, _ . - only)")
    return names


def get_validation_target():
    """The target the baselines are built for: `search.validation_target`, or the first searched target."""
    name = config["search"]["validation_target"]
    targets = get_search_targets()
    if name is None:
        return targets[0] if targets else None
    if name not in config["targets"]:
        raise ValueError(f"search.validation_target {name!r} is not under `targets` ({sorted(config['targets'])})")
    return name


def get_search_strategies(target):
    """`search.strategies`, plus `search.baselines` for the validation target."""
    strategies = list(config["search"]["strategies"])
    if target == get_validation_target():
        strategies += [s for s in config["search"]["baselines"] if s not in strategies]
    return strategies


def get_search_finals():
    """Every final mixture rule all builds."""
    targets = get_search_targets()
    validation = get_validation_target()
    if validation is not None and validation not in targets:
        targets = [*targets, validation]
    return [f"results/search/{t}/{s}/final_mixture.json" for t in targets for s in get_search_strategies(t)]


def _search_round_dirs(target, r):
    """Mixture folders of round r (1-based): the pool's first rounds[0], then the target's proposals."""
    rounds = config["search"]["rounds"]
    if r == 1:
        return [f"results/search/pool/mix{i}" for i in range(rounds[0])]
    return [f"results/search/{target}/round{r}/mix{i}" for i in range(rounds[r - 1])]


def _search_history(target, dirs):
    return {
        "weights": [f"{d}/weights.json" for d in dirs],
        "scores": [f"{d}/scores/{target}.json" for d in dirs],
    }


def _search_round(wildcards, first):
    r = int(wildcards.r)
    n = len(config["search"]["rounds"])
    if not first <= r <= n:
        raise ValueError(f"results/search/{wildcards.target}/round{r}: search.rounds has rounds 1..{n}"
                         + (" (round 1 is the pool; proposals start at round 2)" if first == 2 else ""))
    if wildcards.target not in config["targets"]:
        raise ValueError(f"target {wildcards.target!r} is not configured (targets: {sorted(config['targets'])})")
    return r


def get_replicate_scores(target):
    """Scores on ``target`` of the noise-floor replicates: the natural mixture, trained with one seed each."""
    return [f"results/search/pool/replicate{j}/scores/{target}.json" for j in range(config["search"]["replicates"])]


def get_proxy_seed(wildcards):
    """The search's seed; noise-floor replicate j trains with its own (climb.search.signal.replicate_seed)."""
    from climb.search.signal import replicate_seed

    replicate = re.fullmatch(r"pool/replicate(\d+)", wildcards.mixdir)
    return replicate_seed(config["seed"], int(replicate.group(1))) if replicate else config["seed"]


def get_round_history(wildcards):
    """Weights and this target's scores of every mixture of rounds 1..r (the round-r predictor's data), and the
    replicates' scores (the noise its signal is measured against)."""
    r = _search_round(wildcards, 1)
    dirs = [d for k in range(1, r + 1) for d in _search_round_dirs(wildcards.target, k)]
    return {**_search_history(wildcards.target, dirs), "replicates": get_replicate_scores(wildcards.target)}


def get_proposal_inputs(wildcards):
    """Round r's proposals: round r-1's predictor and everything evaluated in rounds 1..r-1."""
    r = _search_round(wildcards, 2)
    dirs = [d for k in range(1, r) for d in _search_round_dirs(wildcards.target, k)]
    return {**_search_history(wildcards.target, dirs),
            "model": f"results/search/{wildcards.target}/round{r - 1}/predictor.txt",
            "summary": f"results/search/{wildcards.target}/round{r - 1}/predictor.json"}


def get_regmix_history(wildcards):
    """The baselines' data: the first sum(rounds) pool mixtures, scored on the target."""
    budget = sum(config["search"]["rounds"])
    return _search_history(wildcards.target, [f"results/search/pool/mix{i}" for i in range(budget)])


def get_final_inputs(wildcards):
    strategy, target = wildcards.strategy, wildcards.target
    if target not in config["targets"]:
        raise ValueError(f"target {target!r} is not configured (targets: {sorted(config['targets'])})")
    if strategy == "climb":
        last = len(config["search"]["rounds"])
        dirs = [d for k in range(1, last + 1) for d in _search_round_dirs(target, k)]
        return {**_search_history(target, dirs), "model": f"results/search/{target}/round{last}/predictor.txt",
                "summary": f"results/search/{target}/round{last}/predictor.json"}
    if strategy == "regmix":
        return {**get_regmix_history(wildcards), "model": f"results/search/{target}/regmix/predictor.txt"}
    if strategy == "random":
        return get_regmix_history(wildcards)
    return {}


_SEARCH_NOT_PARAMS = ("strategies", "baselines", "targets", "validation_target", "replicates")


def get_sampler_params():
    """The result keys a pool mixture depends on (only these rerun the pool)."""
    from dataclasses import fields

    from climb.search.sampling import SamplerSettings

    sampler = {f.name for f in fields(SamplerSettings)}
    from climb.config import section_keys

    return get_result_settings("search", exclude=tuple(k for k in section_keys("search", "result") if k not in sampler))


def get_predictor_params():
    return {"predictor": get_result_settings("search.predictor")}


def get_regmix_predictor_params():
    """RegMix's regressor is always LightGBM trees: search.predictor.kind is not its param."""
    return {"predictor": get_result_settings("search.predictor", exclude=("kind",))}


def _search_settings(exclude):
    """`search` result keys in the schema's order: whether a config file names a key must not change a rule's params."""
    return get_result_settings("search", exclude=exclude)


def get_proposal_params(wildcards):
    """Search settings of round r's proposals (rounds after r do not affect it)."""
    search = _search_settings((*_SEARCH_NOT_PARAMS, *_REGMIX_KEYS, "predictor", "final", "final_topk"))
    return {**search, "rounds": config["search"]["rounds"][: int(wildcards.r)]}


_REGMIX_KEYS = ("regmix_candidates", "regmix_topk")


def get_final_params(wildcards):
    if wildcards.strategy in ("natural", "uniform", "random"):
        return {}
    if wildcards.strategy == "regmix":  # RegMix's simulation reads only its own keys (and the prior, the pool)
        return {k: config["search"][k] for k in _REGMIX_KEYS}
    search = _search_settings((*_SEARCH_NOT_PARAMS, *_REGMIX_KEYS, "predictor"))
    if wildcards.strategy == "climb":  # the verdict's thresholds and what an unsupported mixture becomes
        search["signal"] = get_result_settings("search.signal")
    return search


# --- validation (rules/validation.smk) ---


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
    from climb.validation import target_model_settings

    return target_model_settings(get_result_settings("proxy"), config["validation"]["model"])


def get_target_model_seed(wildcards):
    from climb.validation import target_model_seed

    return target_model_seed(config["seed"], int(wildcards.s))


def get_validation_eval_data(wildcards):
    """Data files of the validation tasks."""
    return _task_data(config["validation"]["tasks"])


# --- quality (rules/quality.smk) ---


def get_teacher_params():
    """The teacher's result keys; the openai endpoint's only when that teacher is used (else they rerun nothing)."""
    if config["quality"]["teacher"]["kind"] != "openai":
        return {"kind": config["quality"]["teacher"]["kind"]}
    return {**get_result_settings("quality.teacher"), "openai": get_result_settings("quality.teacher.openai")}


def get_classifier_params():
    """Classifier settings; the pretrained models' paths only when they are used."""
    unused = ("pretrained",) if config["quality"]["classifier"]["source"] == "train" else ()
    return get_result_settings("quality.classifier", exclude=unused)


TEXT_NORMALIZATION = ("lowercase", "newline_token", "split_punctuation")


def get_text_normalization_params():
    """What scoring a document needs besides the models: the text normalization they were trained with."""
    return {k: config["quality"]["classifier"][k] for k in TEXT_NORMALIZATION}


# --- proxies (rules/proxy.smk) ---


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
