# Input functions and params of the rules in rules/search.smk.


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


def get_contrast_scores(target):
    """Scores on ``target`` of the pool's first mixture under the replicates' seeds (contrast 0 is pool/mix0 itself),
    pairs with the replicates: the paired noise floor (climb.search.signal.noise_floor)."""
    n = config["search"]["replicates"]
    if n < 2:
        return []
    return [f"results/search/pool/mix0/scores/{target}.json"] + [
        f"results/search/pool/contrast{j}/scores/{target}.json" for j in range(1, n)]


def get_round_history(wildcards):
    """Weights and this target's scores of every mixture of rounds 1..r (the round-r predictor's data), and the
    replicates' and contrasts' scores (the noise its signal is measured against)."""
    r = _search_round(wildcards, 1)
    dirs = [d for k in range(1, r + 1) for d in _search_round_dirs(wildcards.target, k)]
    return {**_search_history(wildcards.target, dirs), "replicates": get_replicate_scores(wildcards.target),
            "contrasts": get_contrast_scores(wildcards.target)}


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
    from climb.core.config import section_keys

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
