"""Score a proxy with lm-eval on a target: named tasks, metrics, weights and signs -> one objective.

Tasks come from lm-eval's stock tasks and from the project's own task YAMLs in ``climb/tasks/`` (plus any
folders in ``evaluation.include_paths``). Local JSON tasks read their data from paths relative to the working
directory; ``evaluation.data_files`` overrides them per task. The objective of a target is
``sum(w * (m if higher_is_better else -m)) / sum(w)`` over its task metrics: higher is always better.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from pathlib import Path
from typing import Any

from climb.compute.allocator import keep_freed_memory
from climb.core.io import write_json, write_jsonl

log = logging.getLogger(__name__)

TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"
KEPT_RESULT_KEYS = ("results", "groups", "group_subtasks", "versions", "n-shot", "higher_is_better", "n-samples")


class EvaluationError(ValueError):
    """A target, task or metric cannot be evaluated as configured."""


def include_paths(settings: dict) -> list[str]:
    """The project's task folder followed by the configured extra folders."""
    return [str(TASKS_DIR), *settings.get("include_paths", [])]


def target_tasks(targets: dict, target: str) -> list[dict]:
    if target not in targets:
        raise EvaluationError(f"target {target!r} is not configured (targets: {sorted(targets)})")
    tasks = targets[target]["tasks"]
    if not tasks:
        raise EvaluationError(f"target {target!r} has no tasks")
    return tasks


def task_names(targets: dict, target: str | None = None) -> list[str]:
    """Task (or group) names of one target, or of every configured target."""
    names = [t["task"] for name in ([target] if target else sorted(targets)) for t in target_tasks(targets, name)]
    return sorted(set(names))


def _local_task_names(settings: dict) -> set[str]:
    names = set()
    for folder in include_paths(settings):
        for path in Path(folder).rglob("*.yaml"):
            match = re.search(r"^task:\s*(\S+)", path.read_text(encoding="utf-8"), re.MULTILINE)
            if match:
                names.add(match.group(1).strip("\"'"))
    return names


def task_manager(config: dict, names: list[str] | None = None) -> Any:
    """lm-eval ``TaskManager`` over the project's task folders; stock tasks indexed only when a name needs them.

    ``config`` is the whole pipeline config (its ``evaluation`` and ``targets`` sections are read); ``names``
    defaults to every task of every configured target.
    """
    from climb.proxy.task_index import task_manager as cached_task_manager

    settings = config["evaluation"]
    names = task_names(config["targets"]) if names is None else names
    need_defaults = bool(set(names) - _local_task_names(settings))
    manager = cached_task_manager(include_paths(settings), need_defaults)
    unknown = [n for n in names if n not in manager.all_tasks]
    if unknown:
        raise EvaluationError(f"unknown lm-eval task(s) {unknown}: not stock tasks and not in {include_paths(settings)}")
    return manager


def task_specs(config: dict, manager: Any, names: list[str]) -> list[str | dict]:
    """Names, or full task configs where ``evaluation.data_files`` overrides a local task's data file."""
    from lm_eval.tasks._yaml_loader import load_yaml

    overrides = config["evaluation"].get("data_files", {})
    specs: list[str | dict] = []
    for name in names:
        if name not in overrides:
            specs.append(name)
            continue
        entry = manager.task_index.get(name)
        if entry is None or entry.yaml_path is None:
            raise EvaluationError(f"evaluation.data_files.{name}: {name} is not a task defined by a YAML file")
        cfg = load_yaml(entry.yaml_path, resolve_func=True)
        files = (cfg.get("dataset_kwargs") or {}).get("data_files")
        if not isinstance(files, dict):
            raise EvaluationError(f"evaluation.data_files.{name}: {entry.yaml_path} has no dataset_kwargs.data_files")
        cfg["dataset_kwargs"] = {**cfg["dataset_kwargs"], "data_files": dict.fromkeys(files, str(overrides[name]))}
        specs.append(cfg)
    unused = set(overrides) - set(names)
    if unused:
        log.debug("data_files overrides for tasks not evaluated here: %s", sorted(unused))
    return specs


def load_tasks(config: dict, names: list[str] | None = None) -> dict[str, Any]:
    """{leaf task name: lm-eval Task} for ``names`` (default: every configured target's tasks), overrides applied."""
    names = task_names(config["targets"]) if names is None else names
    manager = task_manager(config, names)
    return manager.load(task_specs(config, manager, names))["tasks"]


def objective(results: dict, tasks: list[dict]) -> tuple[float, dict[str, float]]:
    """Signed weighted mean of the targets' metrics (higher is better) and each metric's value."""
    values: dict[str, float] = {}
    total = weight_sum = 0.0
    for spec in tasks:
        task, metric = spec["task"], spec["metric"]
        scores = results.get(task)
        if scores is None:
            raise EvaluationError(f"lm-eval returned no results for task {task!r} (got {sorted(results)})")
        key = metric if "," in metric else f"{metric},none"
        if key not in scores:
            raise EvaluationError(f"task {task!r} has no metric {key!r} (available: "
                                  f"{sorted(k for k in scores if ',' in k and 'stderr' not in k)})")
        value = float(scores[key])
        values[f"{task}/{metric}"] = value
        weight = spec.get("weight", 1.0)
        total += weight * (value if spec.get("higher_is_better", True) else -value)
        weight_sum += weight
    if weight_sum <= 0:
        raise EvaluationError("target task weights sum to 0")
    return total / weight_sum, values


def check_answers_fit(tasks: dict[str, Any], proxy_dir: str, limit: int | None = None, tokenizer: Any = None) -> None:
    """Every answer choice of the multiple-choice tasks (their first ``limit`` documents) must fit the proxy's
    context window (lm-eval asserts it). ``tokenizer``: the proxy's, already loaded (default: loaded here).

    Raises an error naming the task, the longest answer and the settings to change, instead of lm-eval's bare
    assertion deep in a run.
    """
    path = Path(proxy_dir) / "config.json"
    window = json.loads(path.read_text(encoding="utf-8")).get("max_position_embeddings") if path.is_file() else None
    if not window:
        return
    from climb.tokens.tokenizer import load_tokenizer

    tok = tokenizer if tokenizer is not None else load_tokenizer(proxy_dir)
    for name, task in sorted(tasks.items()):
        if task.OUTPUT_TYPE != "multiple_choice":
            continue
        delimiter = task.config.target_delimiter
        docs = list(task.eval_docs)[:limit] if limit else task.eval_docs
        answers = sorted({delimiter + str(c) for doc in docs for c in task.doc_to_choice(doc)})
        lengths = [len(ids) for ids in tok(answers, add_special_tokens=False)["input_ids"]] if answers else [0]
        longest = max(lengths)
        if longest > window:
            raise EvaluationError(
                f"task {name}: an answer is {longest} tokens ({answers[lengths.index(longest)][:60]!r}...) but the "
                f"proxy's context ({proxy_dir}) is {window} tokens; raise proxy.max_position_embeddings"
                + (" or lower evaluation.heldout.continuation_chars" if name == "climb_heldout_mc" else ""))


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str, sort_keys=True))


def training_failure(proxy_dir: str) -> dict | None:
    """The ``failed`` record of a proxy that diverged and was skipped (``proxy.on_nonfinite_loss: skip``), else None."""
    path = Path(proxy_dir) / "training.json"
    if not path.is_file():
        return None
    training = json.loads(path.read_text(encoding="utf-8"))
    if training.get("status") != "failed":
        return None
    return dict(training.get("failed") or {"reason": f"{path}: status failed"})


def run_lm_eval(proxy_dir: str, loaded: dict, device: str, dtype: str, settings: dict, seed: int,
                tokenizer: Any = None) -> dict | None:
    """lm-eval's ``evaluate`` on the loaded tasks with the proxy as an ``hf`` model
    (:class:`climb.proxy.scoring_model.ProxyScoringLM`), seeded as ``simple_evaluate`` seeds it (Python, NumPy, torch
    and few-shot sampling). ``tokenizer``: the proxy's, already loaded (default: lm-eval loads it, the same way).

    Not ``simple_evaluate``: it would load the tasks a second time and, after scoring, describe the environment
    by running ``pip`` and ``nvidia-smi`` in subprocesses (torch's collect_env), paid once per proxy for fields
    the pipeline drops.
    """
    import numpy as np
    import torch
    from lm_eval.evaluator import evaluate

    from climb.proxy.scoring_model import ProxyScoringLM

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    for task in loaded["tasks"].values():
        if task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=seed)
    lm = ProxyScoringLM(pretrained=proxy_dir, tokenizer=tokenizer, dtype=dtype, trust_remote_code=False,
                        batch_size=settings["batch_size"], device=device)
    with torch.inference_mode():
        return evaluate(lm=lm, task_dict=loaded, limit=settings["limit"], bootstrap_iters=settings["bootstrap_iters"],
                        log_samples=False, verbosity=None)


def evaluate_proxy(proxy_dir: str, target: str, config: dict, out_path: str, seed: int, threads: int | None = None) -> dict:
    """Run lm-eval on the proxy for one target; write raw results, metric values and the objective."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # stock tasks read the local datasets cache; nothing is fetched
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import torch

    settings = config["evaluation"]
    tasks = target_tasks(config["targets"], target)
    failed = training_failure(proxy_dir)
    if failed is not None:  # proxy.on_nonfinite_loss: skip; no lm-eval run on a diverged model
        report = {"target": target, "objective": None, "failed": failed, "metrics": {}, "tasks": tasks}
        write_json(out_path, report)
        log.warning("target %s: no score, the proxy of %s failed (%s)", target, failed.get("mixture"),
                    failed.get("reason"))
        return report
    from climb.compute.device import resolve_device
    from climb.tokens.tokenizer import load_tokenizer

    cuda = resolve_device(settings["device"], "evaluation.device") == "cuda"  # before loading tasks: fail fast
    t0 = time.perf_counter()
    names = sorted({t["task"] for t in tasks})
    manager = task_manager(config, names)
    loaded = manager.load(task_specs(config, manager, names))  # once: checked below and evaluated as they are
    local_names = _local_task_names(settings)  # reads every task YAML of the include paths: once, not per task
    local = {n: task for n, task in loaded["tasks"].items() if n in local_names}
    tokenizer = load_tokenizer(proxy_dir)  # once, for the check and for lm-eval
    if local:
        check_answers_fit(local, proxy_dir, settings["limit"], tokenizer)
    device = "cuda" if cuda else "cpu"
    dtype = settings["dtype"] if settings["dtype"] != "auto" else ("bfloat16" if cuda else "float32")
    if not cuda:
        keep_freed_memory()
        if threads:
            torch.set_num_threads(threads)
    raw = run_lm_eval(proxy_dir, loaded, device, dtype, settings, seed, tokenizer)
    seconds = time.perf_counter() - t0
    if raw is None:
        raise EvaluationError("lm-eval returned nothing (not rank 0?)")
    results = {**raw.get("results", {}), **raw.get("groups", {})}
    value, metrics = objective(results, tasks)
    report = {
        "target": target,
        "objective": value,
        "metrics": metrics,
        "tasks": tasks,
        "lm_eval": _jsonable({k: raw[k] for k in KEPT_RESULT_KEYS if k in raw}),
        "seconds": round(seconds, 3),
    }
    write_json(out_path, report)
    log.info("target %s: objective %.5f %s (%.1f s)", target, value, metrics, seconds)
    return report


def _continuation_items(chosen: list[tuple[str, str, str]], settings: dict, rng: random.Random, where: str) -> list[dict]:
    """Multiple-choice items from ``chosen`` documents: distractors are continuations of other ``chosen`` ones."""
    cut = settings["context_chars"]
    span = settings["continuation_chars"]

    def split(text: str) -> tuple[str, str] | None:
        # The continuation is the last <= `span` UTF-8 bytes of the first cut + span characters, from a word
        # boundary to a word boundary (so at most `span` tokens under a byte-level tokenizer), and at least 2/3
        # of `span`: choices of similar length, so that plain log-likelihood does not just pick the shortest.
        head = text[: cut + span]
        tail = head.encode("utf-8")[-span:].decode("utf-8", errors="ignore")
        start = tail.find(" ")
        end = tail.rfind(" ") if len(head) < len(text) else len(tail)
        if start < 0 or end <= start:
            return None
        continuation = tail[start:end]
        context = head[: len(head) - len(tail) + start]
        if len(context) < cut // 3 or len(continuation.encode("utf-8")) < 2 * span // 3:
            return None
        return context, continuation

    pieces = [(i, s) for i, t, _ in chosen if (s := split(t)) is not None]
    n_choices = settings["mc_choices"]
    if len(pieces) < n_choices:
        raise EvaluationError(f"{where}: only {len(pieces)} documents of topic {settings['topic']!r} are long enough "
                              f"for {n_choices}-way continuation items (context_chars {cut})")
    items = []
    for k, (doc_id, (context, true)) in enumerate(pieces[: settings["mc_items"]]):
        others = [p[1][1] for j, p in enumerate(pieces) if j != k]
        choices = [true, *rng.sample(others, n_choices - 1)]
        rng.shuffle(choices)
        items.append({"id": doc_id, "context": context, "choices": choices, "label": choices.index(true)})
    return items


def build_heldout_tasks(heldout_path: str, bpb_path: str, mc_path: str, settings: dict, seed: int,
                        validation_bpb_path: str | None = None, validation_mc_path: str | None = None) -> dict:
    """Data of the embedded default's local tasks, from held-out documents of ``settings['topic']``.

    ``bpb_path``: up to ``max_docs`` documents of the topic (``text``). ``mc_path``: up to ``mc_items`` items, each
    the beginning of a topic document (``context``, about ``context_chars``), its true continuation (2/3 to all of
    ``continuation_chars`` UTF-8 bytes, between word boundaries) and ``mc_choices - 1``
    continuations of other held-out documents of the same topic, shuffled, with the index of the true one in ``label``.

    With validation paths, a ``validation_fraction`` of the topic's documents (seeded) is set aside first and the
    validation tasks are built from those alone, the search's tasks from the rest: disjoint documents and questions.
    """
    docs = []
    with open(heldout_path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                docs.append((str(row["id"]), str(row["text"]), str(row["topic"])))
            except (json.JSONDecodeError, KeyError) as err:
                raise EvaluationError(f"{heldout_path} line {line_no}: expected JSON with id, text, topic ({err!r})") from err
    topic = settings["topic"]
    chosen = sorted((d for d in docs if d[2] == topic), key=lambda d: d[0])
    if len(chosen) < 2:
        topics = sorted({d[2] for d in docs})
        raise EvaluationError(f"{heldout_path}: {len(chosen)} held-out documents of topic {topic!r} "
                              f"(evaluation.heldout.topic); topics present: {topics}")
    rng = random.Random(f"{seed}/heldout/{topic}")
    rng.shuffle(chosen)
    splits = {"search": chosen}
    if validation_bpb_path or validation_mc_path:
        n_valid = round(len(chosen) * settings.get("validation_fraction", 0.0))
        if not 2 <= n_valid <= len(chosen) - 2:
            raise EvaluationError(f"{heldout_path}: {len(chosen)} held-out documents of topic {topic!r} cannot be split "
                                  f"{len(chosen) - n_valid} (search) / {n_valid} (validation); raise "
                                  "evaluation.heldout.validation_fraction or the held-out documents per topic")
        splits = {"search": chosen[n_valid:], "validation": chosen[:n_valid]}
    paths = {"search": (bpb_path, mc_path), "validation": (validation_bpb_path, validation_mc_path)}
    summary: dict[str, Any] = {"topic": topic}
    for name, part in splits.items():
        bpb = [{"id": i, "text": t[: settings["max_chars"]]} for i, t, _ in part[: settings["max_docs"]]]
        items = _continuation_items(part, settings, rng, f"{heldout_path} ({name} split)")
        out_bpb, out_mc = paths[name]
        if out_bpb:
            write_jsonl(out_bpb, bpb)
        if out_mc:
            write_jsonl(out_mc, items)
        summary[name] = {"documents": len(part), "bpb_docs": len(bpb), "mc_items": len(items)}
    log.info("held-out tasks: %s", summary)
    return summary
