"""Benchmark decontamination: remove corpus documents that share a long word n-gram with an evaluation task.

The evaluation texts are read through lm-eval's own task definitions (``TaskManager`` with the project's
include path), so whatever a target scores on is what the corpus is checked against: for every evaluation
document of every leaf task, the prompt (``doc_to_text``), the decontamination query where the task defines
one, every answer choice and the prompt followed by its correct answer.

Texts are normalised (NFKC, lower case) and split into words (``\\w+``); an n-gram is ``n`` consecutive
words (13 by default, as in GPT-3 and lm-eval's decontamination). One job builds the index of every
evaluation n-gram (``index.parquet``: 64-bit hash, task, the n-gram's words); one job per shard hashes every
window of every document with the same rolling hash, looks the hashes up and confirms each hit against the
stored words, so a hash collision can never remove a document.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from climb.core.io import write_json, write_parquet

log = logging.getLogger("climb.filter.decontam")

WORD_RE = re.compile(r"\w+")
_P = np.uint64(0x100000001B3)  # multiplier of the polynomial rolling hash (FNV prime)

INDEX_SCHEMA = pa.schema([("hash", pa.uint64()), ("task", pa.string()), ("ngram", pa.string())])
FILTER_SCHEMA = pa.schema([("id", pa.string()), ("reason", pa.string()), ("task", pa.string()),
                           ("ngram", pa.string())])


class DecontamError(ValueError):
    """The evaluation tasks or the corpus cannot be read as configured."""


def words(text: str) -> list[str]:
    """Normalised words of a text: NFKC, lower case, runs of word characters."""
    return WORD_RE.findall(unicodedata.normalize("NFKC", text).lower())


class _WordHasher:
    """Stable 64-bit word hashes (blake2b), cached per job."""

    def __init__(self, max_cache: int = 5_000_000) -> None:
        self._cache: dict[str, int] = {}
        self._max = max_cache

    def __call__(self, ws: Sequence[str]) -> np.ndarray:
        cache = self._cache
        if len(cache) > self._max:
            cache.clear()
        out = np.empty(len(ws), dtype=np.uint64)
        for i, w in enumerate(ws):
            h = cache.get(w)
            if h is None:
                h = int.from_bytes(hashlib.blake2b(w.encode("utf-8"), digest_size=8).digest(), "little")
                cache[w] = h
            out[i] = h
        return out


def rolling_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """Hash of every window of ``n`` consecutive words: sum_j w[i+j] * P^(n-1-j) mod 2^64."""
    m = len(word_hashes) - n + 1
    if m <= 0:
        return np.empty(0, dtype=np.uint64)
    h = np.zeros(m, dtype=np.uint64)
    for j in range(n):
        h = h * _P + word_hashes[j : j + m]
    return h


def target_tasks(targets: Mapping[str, Any]) -> list[str]:
    """Task (or group) names used by the configured targets: {name: {tasks: [{task: ...}, ...]}}."""
    names: set[str] = set()
    for target, spec in targets.items():
        for entry in (spec or {}).get("tasks", []):
            name = entry["task"] if isinstance(entry, Mapping) else entry
            if not isinstance(name, str) or not name:
                raise DecontamError(f"targets.{target}.tasks: entry {entry!r} names no task")
            names.add(name)
    return sorted(names)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def _decontamination_query(task: Any, doc: Any) -> Any:
    try:
        return task.doc_to_decontamination_query(doc)
    except (SyntaxError, ValueError):
        # lm-eval 0.4.13 passes a rendered template through ast.literal_eval, which fails on plain text
        from lm_eval.utils import apply_template

        return apply_template(task.config.doc_to_decontamination_query, doc)


def _doc_texts(task: Any, doc: Any) -> list[str]:
    """Every text of one evaluation document that a model would be shown or asked to produce."""
    prompts = _strings(task.doc_to_text(doc))
    texts = list(prompts)
    if getattr(task, "should_decontaminate", lambda: False)():
        texts += _strings(_decontamination_query(task, doc))
    output_type = getattr(task, "OUTPUT_TYPE", None)
    answers: list[str] = []
    if output_type == "multiple_choice":
        choices = _strings(task.doc_to_choice(doc))
        texts += choices
        target = task.doc_to_target(doc)
        if isinstance(target, int) and 0 <= target < len(choices):
            answers = [choices[target]]
        elif isinstance(target, str) and target.strip().isdigit() and int(target) < len(choices):
            answers = [choices[int(target)]]
        elif isinstance(target, list):
            answers = [choices[t] for t in target if isinstance(t, int) and 0 <= t < len(choices)]
        else:
            answers = _strings(target)
    else:
        answers = _strings(task.doc_to_target(doc))
        texts += answers
    texts += [f"{p} {a}" for p in prompts for a in answers]
    return texts


def task_texts(tasks: Mapping[str, Any]) -> dict[str, list[str]]:
    """{leaf task name: texts of its evaluation documents} for loaded lm-eval tasks."""
    texts: dict[str, list[str]] = {}
    for name in sorted(tasks):
        task = tasks[name]
        docs = task.eval_docs
        texts[name] = [t for doc in docs for t in _doc_texts(task, doc)]
        log.info("task %s: %d evaluation documents, %d texts", name, len(docs), len(texts[name]))
    return texts


def load_task_texts(task_names: Sequence[str], include_path: str | Path | Sequence[str] | None,
                    include_defaults: bool = False) -> dict[str, list[str]]:
    """{leaf task name: texts} for the evaluation documents of the named tasks or groups, via lm-eval.

    lm-eval resolves ``data_files`` against the working directory, as it does when it evaluates.
    """
    from climb.proxy.task_index import task_manager

    if not task_names:
        return {}
    if isinstance(include_path, (str, Path)):
        include_path = [str(include_path)]
    manager = task_manager(list(include_path) if include_path else None, include_defaults or not include_path)
    unknown = [name for name in task_names if name not in manager.all_tasks]
    if unknown:
        raise DecontamError(f"decontam: unknown lm-eval task(s) {unknown} (include path {include_path}, "
                            f"stock tasks {'on' if include_defaults else 'off'})")
    return task_texts(manager.load(list(task_names))["tasks"])


def _yaml_files(include_paths: Sequence[str | Path]) -> dict[str, dict]:
    """{task or group name: parsed YAML} of the task files under the include paths (function tags ignored)."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    found: dict[str, dict] = {}
    for folder in include_paths:
        for path in sorted(Path(folder).rglob("*.yaml")):
            try:
                doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
            except yaml.YAMLError as err:
                raise DecontamError(f"{path}: not a readable task YAML ({err})") from err
            if isinstance(doc, dict):
                name = doc.get("group") or doc.get("task")
                if isinstance(name, str):
                    found[name] = doc
    return found


def task_data_files(task_names: Sequence[str], include_paths: Sequence[str | Path],
                    overrides: Mapping[str, str] | None = None) -> list[str]:
    """Local data files (``dataset_kwargs.data_files``) the named tasks or groups read, as given in their YAMLs.

    Lets the workflow make the decontamination index depend on evaluation data that the pipeline builds itself.
    Stock tasks (not under the include paths) contribute nothing.
    """
    overrides = overrides or {}
    docs = _yaml_files(include_paths)
    files: set[str] = set()
    seen: set[str] = set()
    stack = list(task_names)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in overrides:
            files.add(str(overrides[name]))
            continue
        doc = docs.get(name)
        if doc is None:
            continue
        members = doc.get("task")
        if doc.get("group") and isinstance(members, list):
            stack += [m if isinstance(m, str) else m.get("task") for m in members if m]
            continue
        data_files = (doc.get("dataset_kwargs") or {}).get("data_files")
        if isinstance(data_files, str):
            files.add(data_files)
        elif isinstance(data_files, dict):
            for value in data_files.values():
                files.update([value] if isinstance(value, str) else list(value))
        elif isinstance(data_files, list):
            files.update(data_files)
    return sorted(files)


def load_pipeline_task_texts(task_names: Sequence[str], config: Mapping[str, Any]) -> dict[str, list[str]]:
    """Texts of the named tasks loaded as the evaluation stage loads them (climb.proxy.evaluate: include paths,
    ``evaluation.data_files`` overrides)."""
    if not task_names:
        return {}
    from climb.proxy.evaluate import load_tasks

    return task_texts(load_tasks(dict(config), list(task_names)))


def build_index(task_texts: Mapping[str, Iterable[str]], ngram: int) -> tuple[pa.Table, dict[str, Any]]:
    """The n-gram index (hash, task, ngram) sorted by hash, and per-task statistics."""
    hasher = _WordHasher()
    entries: dict[tuple[int, str], str] = {}
    stats: dict[str, Any] = {}
    for task in sorted(task_texts):
        n_texts = n_short = 0
        seen: set[int] = set()
        for text in task_texts[task]:
            n_texts += 1
            ws = words(text)
            if len(ws) < ngram:
                n_short += 1
                continue
            for i, h in enumerate(rolling_hashes(hasher(ws), ngram).tolist()):
                if h not in seen:
                    seen.add(h)
                    entries[(h, task)] = " ".join(ws[i : i + ngram])
        stats[task] = {"texts": n_texts, "texts_shorter_than_ngram": n_short, "ngrams": len(seen)}
        if n_short:
            log.info("task %s: %d of %d texts are shorter than %d words and cannot match on their own",
                     task, n_short, n_texts, ngram)
    keys = sorted(entries)
    table = pa.table({"hash": pa.array([k[0] for k in keys], pa.uint64()),
                      "task": pa.array([k[1] for k in keys], pa.string()),
                      "ngram": pa.array([entries[k] for k in keys], pa.string())}, schema=INDEX_SCHEMA)
    return table, stats


def build_index_file(task_names: Sequence[str], output: str | Path, stats_output: str | Path, ngram: int = 13,
                     config: Mapping[str, Any] | None = None, include_path: str | Path | None = None) -> None:
    """Write the evaluation n-gram index of the named tasks (an empty index for no tasks).

    With ``config`` (the pipeline's, with its ``evaluation`` section) tasks are loaded as the evaluation stage
    loads them; otherwise from ``include_path`` (plus lm-eval's stock tasks when it is None).
    """
    if config is not None:
        texts = load_pipeline_task_texts(task_names, config)
    else:
        texts = load_task_texts(task_names, include_path)
    table, stats = build_index(texts, ngram)
    write_parquet(output, table)
    write_json(stats_output, {"ngram": ngram, "requested": sorted(task_names), "tasks": stats,
                              "n_ngrams": table.num_rows})
    log.info("index: %d n-grams of %d tasks", table.num_rows, len(stats))


class NgramIndex:
    """Lookup of evaluation n-grams; hits are confirmed against the stored words."""

    def __init__(self, table: pa.Table, ngram: int) -> None:
        self.ngram = ngram
        self.hashes = np.unique(table.column("hash").to_numpy().astype(np.uint64))
        self._entries: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for h, task, gram in zip(table.column("hash").to_pylist(), table.column("task").to_pylist(),
                                 table.column("ngram").to_pylist(), strict=True):
            if len(gram.split(" ")) != ngram:
                raise DecontamError(f"n-gram index holds {len(gram.split(' '))}-grams, config says ngram={ngram}")
            self._entries[h].append((task, gram))

    @classmethod
    def read(cls, path: str | Path, ngram: int) -> NgramIndex:
        return cls(pq.read_table(path, schema=INDEX_SCHEMA), ngram)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        if len(self.hashes) == 0:
            return np.zeros(len(hashes), dtype=bool)
        pos = np.searchsorted(self.hashes, hashes).clip(max=len(self.hashes) - 1)
        return self.hashes[pos] == hashes

    def tasks_of(self, h: int, gram: str) -> list[str]:
        return [task for task, g in self._entries.get(h, []) if g == gram]


def find_contaminated(ids: Sequence[str], texts: Sequence[str], index: NgramIndex,
                      hasher: _WordHasher | None = None) -> list[dict[str, str]]:
    """Rows (id, reason, task, ngram) of the documents sharing an n-gram with an evaluation task."""
    hasher = hasher or _WordHasher()
    n = index.ngram
    doc_words = [words(t) for t in texts]
    lengths = np.array([len(ws) for ws in doc_words], dtype=np.int64)
    flat = hasher([w for ws in doc_words for w in ws])
    starts = np.concatenate([[0], np.cumsum(lengths)])
    window = rolling_hashes(flat, n)
    hits = np.flatnonzero(index.contains(window))
    rows: list[dict[str, str]] = []
    if len(hits) == 0:
        return rows
    doc_of = np.searchsorted(starts, hits, side="right") - 1
    found: dict[int, tuple[set[str], str]] = {}
    for pos, d in zip(hits.tolist(), doc_of.tolist(), strict=True):
        offset = pos - starts[d]
        if offset + n > lengths[d]:
            continue  # the window runs into the next document
        gram = " ".join(doc_words[d][offset : offset + n])
        tasks = index.tasks_of(int(window[pos]), gram)
        if tasks:
            entry = found.setdefault(d, (set(), gram))
            entry[0].update(tasks)
    for d in sorted(found):
        tasks, gram = found[d]
        names = sorted(tasks)
        label = f"eval task {names[0]}" if len(names) == 1 else f"eval tasks {', '.join(names)}"
        rows.append({"id": ids[d], "reason": f"shares a {n}-gram with {label}: \"{gram}\"",
                     "task": ",".join(names), "ngram": gram})
    return rows


def decontaminate_shard(corpus: str | Path, index_path: str | Path, output: str | Path, ngram: int = 13,
                        batch_rows: int = 10000) -> int:
    """Write the filter list (id, reason, task, ngram) of one corpus shard; returns the number removed."""
    index = NgramIndex.read(index_path, ngram)
    hasher = _WordHasher()
    rows: list[dict[str, str]] = []
    n_docs = 0
    parquet = pq.ParquetFile(corpus)
    for name in ("id", "text"):
        if name not in parquet.schema_arrow.names:
            raise DecontamError(f"{corpus}: no column {name!r}")
    if len(index.hashes):
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=["id", "text"]):
            ids = batch.column("id").to_pylist()
            texts = batch.column("text").to_pylist()
            for row, text in enumerate(texts):
                if text is None:
                    raise DecontamError(f"{corpus}: row {n_docs + row} (id {ids[row]!r}) has no text")
            rows += find_contaminated(ids, texts, index, hasher)
            n_docs += len(ids)
    else:
        n_docs = parquet.metadata.num_rows
    table = pa.Table.from_pylist(rows, schema=FILTER_SCHEMA)
    write_parquet(output, table)
    log.info("%s: %d of %d documents share a %d-gram with an evaluation task", corpus, len(rows), n_docs, ngram)
    return len(rows)
