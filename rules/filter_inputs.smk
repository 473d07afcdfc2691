# Input functions and params of the rules in rules/filter.smk.


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
    from climb.filter.decontam import target_tasks

    # Validation tasks too, except the embedded held-out ones when there are no held-out documents to build them from.
    heldout = bool(config["evaluation"]["heldout"]["path"]) or not config["input"]["shards"] or carving()
    validation = [t["task"] for t in config["validation"]["tasks"]
                  if heldout or t["task"] not in LOCAL_EVAL_DATA or t["task"] in config["evaluation"]["data_files"]]
    return sorted(set(target_tasks(config["targets"])) | set(config["decontam"]["tasks"]) | set(validation))


def get_decontam_index_inputs(wildcards):
    """Evaluation data the pipeline builds itself (results/...) that the decontaminated tasks read."""
    from climb.filter.decontam import task_data_files
    from climb.proxy.evaluate import include_paths

    files = task_data_files(get_decontam_tasks(), include_paths(config["evaluation"]),
                            config["evaluation"]["data_files"])
    return [f for f in files if f.startswith("results/")]
