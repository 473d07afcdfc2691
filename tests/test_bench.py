"""The benchmark runner at tiny size: JSON schema and table (no timing is asserted)."""

from __future__ import annotations

import json
import time

import pytest

from climb.bench.common import peak_rss
from climb.bench.items import ITEMS, stage_seconds
from climb.bench.runner import main, markdown, parse_only

ROW_KEYS = {"metric", "ours", "baseline", "ratio", "goal", "met", "note"}


def allocate(mb: int) -> None:
    """Touch ``mb`` MiB of anonymous memory and hold it for 0.1 s (the memory probe's subject in the test below).

    The probe samples anonymous memory every 5 ms from a thread; the allocation and the touching hold the GIL, so a
    block freed right after them can be gone before the sampler runs on a loaded machine (it failed once in CI).
    """
    block = bytearray(mb * 2**20)
    block[::4096] = b"x" * len(block[::4096])
    time.sleep(0.1)


def test_runner_writes_schema_and_table(tmp_path, capsys):
    out = tmp_path / "results.json"
    assert main(["--size", "tiny", "--only", "outcome,predictor,end_to_end", "--out", str(out),
                 "--markdown", str(tmp_path / "t.md")]) == 0
    report = json.loads(out.read_text())
    assert report["size"] == "tiny"
    assert {"cpu", "cores", "memory_gib", "loadavg_start", "loadavg_end"} <= set(report["machine"])
    assert [i["name"] for i in report["items"]] == ["predictor", "end_to_end", "outcome"]  # suite order
    for item in report["items"]:
        assert item["status"] in {"ok", "skipped"}, item
        assert set(item) == {"name", "status", "seconds", "rows", "details", "note"}
        for row in item["rows"]:
            assert set(row) == ROW_KEYS
    by_name = {i["name"]: i for i in report["items"]}
    assert by_name["end_to_end"]["status"] == "skipped" and "small" in by_name["end_to_end"]["note"]
    predictor = by_name["predictor"]
    if predictor["status"] == "ok":  # the RegMix data is there
        row = predictor["rows"][0]
        assert 0.9 < row["ours"] <= 1 and 0.8 < row["baseline"] < 1
    table = capsys.readouterr().out
    assert table.startswith("| item | figure |") and table == report["markdown"] + "\n"
    assert (tmp_path / "t.md").read_text() == table
    assert len([line for line in table.splitlines() if line.startswith("| ")]) >= 1 + len(report["items"])


def test_unknown_item_is_refused():
    with pytest.raises(SystemExit, match="unknown benchmark item"):
        parse_only("embed,nonsense")
    assert parse_only("kmeans, embed") == ["embed", "kmeans"]
    assert parse_only(None) == list(ITEMS)


def test_peak_rss_measures_the_child_not_the_parent():
    small = peak_rss("tests.test_bench", "allocate", {"mb": 1})
    big = peak_rss("tests.test_bench", "allocate", {"mb": 300})
    assert big["peak_anon_mb"] - small["peak_anon_mb"] > 250
    assert big["peak_mb"] - small["peak_mb"] > 250
    assert small["peak_mb"] < 1000  # not the parent's (pytest + torch) RSS carried across exec


def test_stage_seconds_sums_benchmark_files(tmp_path):
    header = "s\th:m:s\tmax_rss\n"
    for rel, s in [("embed/a.tsv", 2.0), ("embed/b.tsv", 3.5), ("kmeans/fit.tsv", 1.0), ("export/plan.tsv", 0.5)]:
        path = tmp_path / "results" / "benchmarks" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{s}\t0:00:0{int(s)}\t10\n")
    assert stage_seconds(tmp_path) == {"embed": 5.5, "kmeans": 1.0, "export": 0.5}


def test_markdown_marks_missed_goals_and_skips():
    report = {"size": "tiny", "seconds": 1.0,
              "machine": {"cpu": "x", "cores": 2, "memory_gib": 1.0, "loadavg_start": [3.0, 0, 0]},
              "items": [{"name": "a", "status": "ok", "note": "", "rows": [
                  {"metric": "m", "ours": 1.5, "baseline": 2.0, "ratio": 0.75, "goal": ">= 0.95", "met": False,
                   "note": "n|x"}]},
                  {"name": "b", "status": "skipped", "note": "why", "rows": []}]}
    text = markdown(report)
    assert "| a | m | 1.5 | 2 | 0.75 | >= 0.95 | **no** | n/x |" in text
    assert "| b | skipped |" in text and "why" in text and "load average at start 3.0" in text


def test_dedup_item_reports_pairs_per_second_and_memory(tmp_path):
    """The dedup item's rows (figures only: speed and memory goals are read from `make bench`, not asserted here)."""
    from climb.bench.items import dedup

    result = dedup("tiny", tmp_path)
    assert [r.metric.split(",")[0] for r in result.rows] == ["dedup pairs/s on CPU (2 threads)",
                                                              *["dedup peak anonymous MB beyond the vectors (imports "
                                                                "included)"] * 2]
    assert float(result.rows[0].ours) > 0 and float(result.rows[0].baseline) > 0
    memory = result.details["memory"]
    assert memory[4]["rows"] == 4 * memory[1]["rows"] and memory[4]["vectors_mb"] >= 3.8 * memory[1]["vectors_mb"]
    assert memory[1]["ours"]["peak_anon_mb"] > memory[1]["vectors_mb"]  # the probe saw the vectors
