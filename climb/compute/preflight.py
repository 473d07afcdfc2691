"""Before any job of a run on a real corpus: what is still at the demo's value, and what the run will load that is not
in the local caches (GPU compute nodes are often offline).

Two lists, printed by the Snakefile when ``input.shards`` is set (the embedded default stays quiet) and by
``python -m climb.compute.plan`` (it runs the same dry run):

- every key still at the schema's default (the embedded demo's value) where the paper differs, with
  configs/paper-scale.yaml's value (:data:`PAPER_VALUES`; tests/test_preflight.py keeps them equal);
- every model, tokenizer and lm-eval dataset the run will load that is not in the local Hugging Face caches.

``preflight: strict`` makes a finding an error; ``off`` skips the checks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from climb.core.config import load_schema

PREFIX = "preflight: "

# The paper's value of each key whose schema default is the embedded demo's (configs/paper-scale.yaml).
PAPER_VALUES: dict[str, Any] = {
    "quality.teacher.kind": "openai",
    "proxy.preset": "350m",
    "proxy.tokens": 1_000_000_000,
    "cluster.k": 1000,
    "merge.n_superclusters": 21,
    "search.rounds": [64, 32, 16],
    "search.epoch_tokens": 400_000_000_000,
    "export.token_budget": 400_000_000_000,
    "validation.model": {"preset": "350m", "tokens": 40_000_000_000, "nproc": 8},
}

# Local evaluation tasks whose data the pipeline builds itself (no cache to check).
_BUILT = ("climb_heldout_bpb", "climb_heldout_mc", "climb_validation_bpb", "climb_validation_mc")


class PreflightError(ValueError):
    """`preflight: strict` and the run still has demo settings or things missing from the local caches."""


def _get(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = node[part]
    return node


def _schema_default(dotted: str, schema: Mapping[str, Any]) -> Any:
    node: Any = schema
    for part in dotted.split("."):
        node = node["properties"][part]
    return node.get("default")


def demo_settings(config: Mapping[str, Any], schema: Mapping[str, Any] | None = None) -> list[str]:
    """``key = value (demo); paper: value`` for every key of :data:`PAPER_VALUES` still at its schema default."""
    schema = schema if schema is not None else load_schema()
    found = []
    for key, paper in PAPER_VALUES.items():
        if key == "quality.teacher.kind" and config["quality"]["classifier"]["source"] != "train":
            continue  # pretrained classifiers: no teacher runs
        value, default = _get(config, key), _schema_default(key, schema)
        if value == default and value != paper:
            found.append(f"{key} = {value!r} (the embedded demo's default); configs/paper-scale.yaml: {paper!r}")
    return found


# --- local caches ---

def _hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _datasets_cache() -> Path:
    home = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
    return Path(os.environ.get("HF_DATASETS_CACHE", str(Path(home) / "datasets")))


def model_cached(name: str) -> bool:
    """A local folder, or a Hugging Face model id with a snapshot in the local hub cache."""
    if Path(name).expanduser().is_dir():
        return True
    if name.count("/") != 1:
        return False
    snapshots = _hub_cache() / f"models--{name.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())


def dataset_cached(path: str, name: str | None = None) -> bool:
    """A Hugging Face dataset in the local hub cache, or prepared in the datasets cache."""
    hub = _hub_cache() / f"datasets--{path.replace('/', '--')}" / "snapshots"
    if hub.is_dir() and any(hub.iterdir()):
        return True
    prepared = _datasets_cache() / path.replace("/", "___")
    if name:
        prepared = prepared / name
    return prepared.is_dir() and any(prepared.iterdir())


def models_to_load(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, model or tokenizer) of everything the run loads from a path or the Hugging Face cache."""
    out = []
    embed = config["embed"]["model"]
    if not embed.startswith("packaged:"):
        out.append(("embed.model", embed))
    if config["tokenizer"].get("path"):
        out.append(("tokenizer.path", config["tokenizer"]["path"]))
    if config["proxy"].get("init_from"):
        out.append(("proxy.init_from", config["proxy"]["init_from"]))
    init = (config.get("validation", {}).get("model") or {}).get("init_from")
    if init:
        out.append(("validation.model.init_from", init))
    return out


def run_tasks(config: Mapping[str, Any]) -> list[str]:
    """Every lm-eval task or group the run evaluates or decontaminates against."""
    names = {t["task"] for target in config["targets"].values() for t in target["tasks"]}
    names |= {t["task"] for t in config["validation"]["tasks"]}
    names |= set(config["decontam"].get("tasks", []))
    return sorted(names)


def _task_dataset(manager: Any, name: str) -> list[tuple[str, str | None, Any]]:
    """(dataset_path, dataset_name, data_files) of a task, or of each task of a group (YAML includes followed)."""
    entry = manager.task_index.get(name)
    if entry is None:
        return []
    cfg = dict(entry.cfg or {})
    members = cfg.get("task")
    if isinstance(members, list):  # a group
        out = []
        for member in members:
            sub = member if isinstance(member, str) else (member or {}).get("task")
            if isinstance(sub, str):
                out += _task_dataset(manager, sub)
        return out
    folder = Path(entry.yaml_path).parent if entry.yaml_path else None
    include = cfg.get("include")
    while include and folder is not None and "dataset_path" not in cfg:
        base_path = folder / include
        base = yaml.load(base_path.read_text(encoding="utf-8"), Loader=_IgnoreTags) or {}
        cfg = {**base, **cfg, "include": base.get("include")}
        include, folder = cfg["include"], base_path.parent
    files = (cfg.get("dataset_kwargs") or {}).get("data_files")
    return [(cfg.get("dataset_path"), cfg.get("dataset_name"), files)] if cfg.get("dataset_path") else []


class _IgnoreTags(yaml.SafeLoader):
    pass


_IgnoreTags.add_multi_constructor("!", lambda loader, suffix, node: None)


def _files(data_files: Any) -> list[str]:
    if isinstance(data_files, str):
        return [data_files]
    if isinstance(data_files, dict):
        return [f for v in data_files.values() for f in _files(v)]
    if isinstance(data_files, list):
        return [str(f) for f in data_files]
    return []


def missing_from_caches(config: Mapping[str, Any]) -> list[str]:
    """Every model, tokenizer and lm-eval dataset the run will load that is not on this machine."""
    missing = [f"{key} = {name!r}: not a local folder and not in the Hugging Face cache ({_hub_cache()})"
               for key, name in models_to_load(config) if not model_cached(name)]
    overrides = config["evaluation"].get("data_files", {})
    missing += [f"evaluation.data_files.{task} = {path!r}: no such file" for task, path in sorted(overrides.items())
                if task in run_tasks(config) and not path.startswith("results/") and not Path(path).exists()]
    tasks = [t for t in run_tasks(config) if t not in _BUILT and t not in overrides]
    if not tasks:
        return missing
    from climb.proxy.evaluate import include_paths
    from climb.proxy.task_index import task_manager

    manager = task_manager(include_paths(config["evaluation"]), include_defaults=True)
    for task in tasks:
        datasets = _task_dataset(manager, task)
        if not datasets and task not in manager.all_tasks:
            missing.append(f"lm-eval task {task!r}: unknown to lm-eval (stock tasks and evaluation.include_paths)")
        for path, name, data_files in datasets:
            if path in ("json", "csv", "parquet", "text", "arrow"):
                missing += [f"lm-eval task {task!r}: data file {f} does not exist" for f in _files(data_files)
                            if not Path(f).exists()]
            elif not dataset_cached(path, name):
                missing.append(f"lm-eval task {task!r}: dataset {path}{'/' + name if name else ''} is not in the "
                               f"local caches ({_hub_cache()}, {_datasets_cache()})")
    return missing


# Jobs per per-shard stage above which the DAG itself gets slow (a dry run of 2,000 one-shard jobs per stage takes
# ~40 s on 2 cores, 20,000 several minutes; bench/results.md): the preflight suggests batching shards.
MAX_JOBS_PER_STAGE = 1000


def batching(config: Mapping[str, Any]) -> list[str]:
    """A finding when the input shards make more than MAX_JOBS_PER_STAGE jobs of each per-shard stage."""
    from climb.corpus.shards import ShardError, resolve_shards

    try:
        n = len(resolve_shards(config["input"]["shards"]))
    except ShardError:  # the Snakefile stops on it with its own message
        return []
    per_job = config["input"]["shards_per_job"]
    jobs = -(-n // per_job)
    if jobs <= MAX_JOBS_PER_STAGE:
        return []
    suggested = -(-n // MAX_JOBS_PER_STAGE)
    return [f"input.shards_per_job = {per_job}: {n:,} input shards are ~{jobs:,} jobs of each of the 8 per-shard "
            f"stages, and every dry run builds them all; input.shards_per_job: {suggested} makes ~{MAX_JOBS_PER_STAGE:,}"]


def preflight(config: Mapping[str, Any]) -> list[str]:
    """The findings for a run on a real corpus (none for the embedded default, or with ``preflight: off``)."""
    if not config["input"]["shards"] or config.get("preflight", "warn") == "off":
        return []
    return [*(f"demo setting: {line}" for line in demo_settings(config)),
            *(f"many jobs: {line}" for line in batching(config)),
            *(f"not in the local caches: {line}" for line in missing_from_caches(config))]


def report(findings: Sequence[str], mode: str) -> str:
    """The text printed before any job (lines start with :data:`PREFIX`)."""
    if not findings:
        return ""
    head = (f"{PREFIX}{len(findings)} finding(s) before this run on a real corpus"
            f"{' (preflight: strict, stopping)' if mode == 'strict' else ' (set preflight: strict to stop on them)'}:")
    return "\n".join([head, *(f"{PREFIX}  - {line}" for line in findings)])


def check(config: Mapping[str, Any]) -> str:
    """Findings as text; raises :class:`PreflightError` with that text under ``preflight: strict``."""
    mode = config.get("preflight", "warn")
    text = report(preflight(config), mode)
    if text and mode == "strict":
        raise PreflightError(text)
    return text
