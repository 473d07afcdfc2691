"""lm-eval's index of its own task YAMLs, built once per lm-eval install and kept on disk.

lm-eval's ``TaskManager`` parses every YAML file under ``lm_eval/tasks`` when it is constructed (~14,000 files,
~6 s on 2 cores), even to look up one task. climb constructs one in the preflight of every Snakemake command on
a real corpus (dry runs included), in every scoring job of a stock task (arc_easy, piqa, ...: on a GPU node, once
per proxy) and in the decontamination index. :func:`task_manager` builds the stock part of that index once, saves
it under ``$CLIMB_CACHE_DIR`` (default ``~/.cache/climb``), and reads it back while the installed lm-eval is the
same (its version, its path, the install's own record of its files); task folders of the project
(``evaluation.include_paths``) are indexed each time, as lm-eval does. A cache that cannot be read or written is
rebuilt or skipped, never an error. Delete the folder after editing lm-eval's installed YAMLs in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from climb.core.io import atomic_open

log = logging.getLogger(__name__)

CACHE_ENV = "CLIMB_CACHE_DIR"


def cache_dir() -> Path:
    """Where the index is kept: ``$CLIMB_CACHE_DIR``, else ``$XDG_CACHE_HOME/climb``, else ``~/.cache/climb``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "climb"


def stock_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).resolve().parent


def _install_stamp(stock: Path) -> str:
    """The installed lm-eval: version, folder, and the mtime of the install's RECORD (rewritten on reinstall)."""
    from importlib import metadata

    dist = metadata.distribution("lm_eval")
    record = next((Path(str(dist.locate_file(f))) for f in (dist.files or []) if f.name == "RECORD"), None)
    mtime = record.stat().st_mtime_ns if record is not None and record.exists() else 0
    return f"{dist.version}|{stock}|{mtime}"


def _cache_path(stock: Path) -> Path:
    key = hashlib.sha256(_install_stamp(stock).encode()).hexdigest()[:16]
    return cache_dir() / f"lm_eval_task_index-{key}.json"


def _to_json(index: dict[str, Any]) -> str:
    """The index as JSON: its YAML-parsed configs are plain data (a value JSON cannot hold raises TypeError)."""
    rows = [[key, e.name, e.kind.name, None if e.yaml_path is None else str(e.yaml_path), e.cfg, sorted(e.tags)]
            for key, e in index.items()]
    return json.dumps(rows, allow_nan=True)


def _from_json(text: str) -> dict[str, Any]:
    from lm_eval.tasks._index import Entry, Kind

    return {key: Entry(name=name, kind=Kind[kind], yaml_path=None if path is None else Path(path), cfg=cfg,
                       tags=set(tags))
            for key, name, kind, path, cfg, tags in json.loads(text)}


def _stock_index(build: Any, stock: Path, resolve_includes: bool) -> dict[str, Any]:
    if not resolve_includes:  # not what TaskManager asks for: nothing cached
        return build([stock], resolve_includes=False)
    try:
        path = _cache_path(stock)
    except Exception:  # an lm-eval without install metadata: no stamp to trust, so no cache
        return build([stock], resolve_includes=True)
    with contextlib.suppress(Exception):  # missing, unreadable, or written by another lm-eval: rebuild it
        return _from_json(path.read_text(encoding="utf-8"))
    index = build([stock], resolve_includes=True)
    try:
        text = _to_json(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        log.info("lm-eval's task index (%d names) saved to %s", len(index), path)
    except Exception as err:  # a full disk, a read-only home, a config value JSON cannot hold
        log.warning("lm-eval's task index not saved to %s (%s): it is rebuilt next time", path, err)
    return index


@contextlib.contextmanager
def _cached_stock_index() -> Iterator[None]:
    """While inside, lm-eval's ``TaskIndex.build`` reads the stock folder's part from the cache."""
    from lm_eval.tasks import _index

    original = _index.TaskIndex.build
    stock = stock_tasks_dir()

    def build(paths, *, resolve_includes=True):  # noqa: ANN001, ANN202 (lm-eval's signature)
        merged: dict[str, Any] = {}
        for root in paths:  # in order: a later folder's names replace an earlier one's, as in lm-eval
            if Path(root).resolve() == stock:
                merged.update(_stock_index(original, stock, resolve_includes))
            else:
                merged.update(original([root], resolve_includes=resolve_includes))
        return merged

    _index.TaskIndex.build = staticmethod(build)
    try:
        yield
    finally:
        _index.TaskIndex.build = staticmethod(original)


def task_manager(include_path: list[str] | None, include_defaults: bool) -> Any:
    """``lm_eval.tasks.TaskManager(include_path=..., include_defaults=...)``, its stock index from the cache."""
    from lm_eval.tasks import TaskManager

    if not include_defaults:
        return TaskManager(include_path=include_path, include_defaults=False)
    with _cached_stock_index():
        return TaskManager(include_path=include_path, include_defaults=True)
