"""climb.proxy.task_index: lm-eval's stock task index from an on-disk cache, the same index lm-eval builds."""

from __future__ import annotations

import pytest

from climb.proxy.evaluate import include_paths
from climb.proxy.task_index import CACHE_ENV, cache_dir, task_manager

INCLUDE = include_paths({})  # the project's own task folder, as scoring passes it


def described(manager) -> dict:
    return {key: (e.name, e.kind, str(e.yaml_path), e.cfg, sorted(e.tags)) for key, e in manager.task_index.items()}


@pytest.fixture(scope="module")
def plain():
    from lm_eval.tasks import TaskManager

    return described(TaskManager(include_path=INCLUDE, include_defaults=True))


def test_cached_index_is_lm_evals_own(plain, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    built = task_manager(INCLUDE, include_defaults=True)  # builds and saves the stock part
    [saved] = list(cache_dir().glob("lm_eval_task_index-*.json"))
    read = task_manager(INCLUDE, include_defaults=True)  # reads it back
    assert described(built) == plain and described(read) == plain
    assert len(plain) > 5000 and "arc_easy" in plain and "climb_heldout_bpb" in plain
    assert plain["climb_arc_easy"][2].startswith(INCLUDE[0])  # the project's folder still indexed, after the stock one
    assert saved.stat().st_size > 0
    from lm_eval.tasks import _index

    assert _index.TaskIndex.build.__qualname__ == "TaskIndex.build"  # lm-eval's own build restored afterwards


def test_a_broken_or_unwritable_cache_is_rebuilt_or_skipped(plain, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    task_manager(INCLUDE, include_defaults=True)
    [saved] = list(cache_dir().glob("lm_eval_task_index-*.json"))
    saved.write_text("{not json")
    assert described(task_manager(INCLUDE, include_defaults=True)) == plain
    assert saved.read_text() != "{not json"  # rewritten
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))  # cannot be a folder: nothing saved, still answered
    assert described(task_manager(INCLUDE, include_defaults=True)) == plain


def test_without_stock_tasks_nothing_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    manager = task_manager(INCLUDE, include_defaults=False)
    assert "climb_heldout_bpb" in manager.all_tasks and "arc_easy" not in manager.all_tasks
    assert not (tmp_path / "cache").exists()
