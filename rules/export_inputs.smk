# Input functions and params of the rules in rules/export.smk.


from climb.export.climbmix import n_parts


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
