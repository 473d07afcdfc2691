"""Run the benchmark suite: ``python -m climb.bench [--only embed,kmeans] [--size full] [--out bench/results.json]``.

Every figure is measured in this run beside its comparison (ratios side by side in one process, never a
timed test). Writes the JSON and prints one Markdown table.

The suite's process runs with the allocator setting of the CPU jobs it measures (climb/compute/allocator.py), from the
start: the first call of a job's function would set it for the whole process, so an item and its baseline, and every
later item, run with the same one whatever the order.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

from climb.bench.common import ROOT, SIZES, ItemResult, Skip
from climb.bench.items import ITEMS
from climb.compute.allocator import keep_freed_memory
from climb.core.io import write_json

log = logging.getLogger("climb.bench")
ORDER = list(ITEMS)


def machine() -> dict:
    """What the run measured on: CPU model, cores, memory, load average at start."""
    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    mem = None
    with contextlib.suppress(OSError, IndexError, ValueError):
        mem = round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem, "platform": platform.platform(),
            "python": platform.python_version(), "loadavg_start": list(os.getloadavg())}


def parse_only(only: str | None) -> list[str]:
    if not only:
        return ORDER
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in ITEMS]
    if unknown:
        raise SystemExit(f"unknown benchmark item(s) {unknown}; choose from {','.join(ORDER)}")
    return [n for n in ORDER if n in names]


def run_suite(names: list[str], size: str, scratch: Path) -> dict:
    """Run the items in order; an item that fails or cannot run is recorded, never fatal to the others."""
    results: list[ItemResult] = []
    e2e_workdir = None
    start = machine()
    for name in names:
        item_dir = scratch / name
        item_dir.mkdir(parents=True, exist_ok=True)
        log.info("== %s (%s)", name, size)
        t0 = time.perf_counter()
        load0 = os.getloadavg()[0]
        try:
            result = ITEMS[name](size, item_dir, e2e_workdir) if name == "outcome" else ITEMS[name](size, item_dir)
        except Skip as why:
            result = ItemResult(name, status="skipped", note=str(why))
        except Exception as err:  # noqa: BLE001 - one failing item must not lose the others' figures
            log.error("%s failed:\n%s", name, traceback.format_exc())
            result = ItemResult(name, status="error", note=f"{type(err).__name__}: {str(err)[:300]}")
        result.seconds = time.perf_counter() - t0
        result.details["loadavg_1min"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
        if name == "end_to_end" and result.status == "ok":
            e2e_workdir = Path(result.details["workdir"])
        log.info("%s: %s in %.1f s", name, result.status, result.seconds)
        results.append(result)
    loads = [x for r in results for x in r.details["loadavg_1min"]]
    start["loadavg_items"] = [min(loads), max(loads)] if loads else []
    return {"size": size, "machine": start, "items": [r.as_dict() for r in results]}


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return " ".join(str(value).replace("|", "/").split())


def markdown(report: dict) -> str:
    """One Markdown table: item, figure, ours, comparison, ratio, goal, met, note."""
    lines = ["| item | figure | ours | comparison | ratio | goal | met | note |",
             "|---|---|---|---|---|---|---|---|"]
    for item in report["items"]:
        if item["status"] != "ok":
            lines.append(f"| {item['name']} | {item['status']} | | | | | | {_fmt(item['note'])} |")
            continue
        for row in item["rows"]:
            lines.append("| " + " | ".join([item["name"], _fmt(row["metric"]), _fmt(row["ours"]), _fmt(row["baseline"]),
                                            _fmt(row["ratio"]), _fmt(row["goal"]), _fmt(row["met"]),
                                            _fmt(row["note"])]) + " |")
        if item["note"]:
            lines.append(f"| {item['name']} | (data) | | | | | | {_fmt(item['note'])} |")
    m = report["machine"]
    lines.append("")
    lines.append(f"Size `{report['size']}` on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; "
                 f"load average at start {m['loadavg_start'][0]:.1f}"
                 + (f", 1-min load {m['loadavg_items'][0]:.1f}-{m['loadavg_items'][1]:.1f} at the items' start and end"
                    if m.get("loadavg_items") else "") + f"; total {report['seconds']:.0f} s.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m climb.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=os.environ.get("ONLY") or None,
                        help=f"comma-separated items (default all): {','.join(ORDER)}")
    parser.add_argument("--size", choices=SIZES, default="full", help="tiny (seconds), small, full (default)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (its path is logged)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    names = parse_only(args.only)
    keep_freed_memory()
    t0 = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="climb-bench-"))
    try:
        report = run_suite(names, args.size, scratch)
    finally:
        if args.keep:
            log.info("scratch kept at %s", scratch)
        else:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    report["machine"]["loadavg_end"] = list(os.getloadavg())
    table = markdown(report)
    report["markdown"] = table
    write_json(args.out, report)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    print(table)
    return 0
