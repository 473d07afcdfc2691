"""Shared pieces of the benchmark suite: result rows, sizes, data sources, peak memory of a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# Real data for the benchmarks and the tests (not shipped, never read by the workflow): one setting, the data root.
DATA_ROOT = Path(os.environ.get("CLIMB_DATA_ROOT") or ROOT.parent / "shared" / "data")
SIZES = ("tiny", "small", "full")


@dataclass
class Row:
    """One line of the table: a figure, what it is compared against (measured in the same run), the goal."""

    metric: str
    ours: float | str | None
    baseline: float | str | None = None
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ItemResult:
    """The outcome of one benchmark item."""

    name: str
    status: str = "ok"  # ok | skipped | error
    seconds: float = 0.0
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "seconds": round(self.seconds, 2),
                "rows": [r.as_dict() for r in self.rows], "details": self.details, "note": self.note}


class Skip(Exception):
    """Raised by an item that cannot run here (missing data, missing target); the message says why."""


def shared_file(*parts: str) -> Path:
    path = DATA_ROOT.joinpath(*parts)
    if not path.exists():
        raise Skip(f"{path} is absent (real data for benchmarks: set CLIMB_DATA_ROOT)")
    return path


def newsgroup_texts(n: int, min_chars: int = 200) -> list[str]:
    """The first ``n`` 20 Newsgroups documents of at least ``min_chars`` characters (real text)."""
    texts = []
    with open(shared_file("20newsgroups", "20news_bydate.jsonl"), encoding="utf-8") as fh:
        for line in fh:
            text = json.loads(line)["text"].strip()
            if len(text) >= min_chars:
                texts.append(text)
                if len(texts) == n:
                    break
    return texts


def full_config(embedded_default: bool = False) -> dict[str, Any]:
    """Every key at the schema's default, as Snakemake's ``validate`` fills them in; with ``embedded_default``,
    config.yaml's values under them first, as the Snakefile applies the embedded default."""
    from snakemake.utils import validate

    from climb.core.config import SCHEMA_PATH, apply_embedded_default

    config: dict[str, Any] = {}
    if embedded_default:
        apply_embedded_default(config, ROOT / "config.yaml")
    validate(config, str(SCHEMA_PATH))
    return config


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def timed(fn, *args, **kwargs) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


MEMORY_PROBE = """
import json, resource, sys
def rss_mb():
    with open('/proc/self/statm') as fh:
        return int(fh.read().split()[1]) * {page} / 2**20
import importlib
spec = json.loads(sys.argv[1])
module = importlib.import_module(spec['module'])
fn = getattr(module, spec['function'])
for name in spec.get('preload', []):
    importlib.import_module(name)
base = rss_mb()
import threading
anon = [0.0]
done = threading.Event()
def sample():
    while not done.is_set():
        with open('/proc/self/status') as fh:
            kb = next(int(line.split()[1]) for line in fh if line.startswith('RssAnon:'))
        anon[0] = max(anon[0], kb / 1024)
        done.wait(0.005)
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
fn(**spec['kwargs'])
done.set()
sampler.join()
with open('/proc/self/status') as fh:
    hwm = next(int(line.split()[1]) for line in fh if line.startswith('VmHWM:')) / 1024
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{'peak_mb': hwm, 'baseline_mb': base, 'ru_maxrss_mb': maxrss, 'peak_anon_mb': anon[0]}}))
"""


def peak_rss(module: str, function: str, kwargs: dict[str, Any], preload: list[str] | None = None) -> dict[str, float]:
    """Run ``module.function(**kwargs)`` in a fresh interpreter; its peak RSS, the RSS after imports, and the
    peak anonymous RSS (sampled every 5 ms: memory that is not mapped file pages).

    The peak is VmHWM of the new interpreter: ru_maxrss survives exec on Linux, so a child forked from this (large)
    process would report the parent's RSS instead of its own.
    """
    code = MEMORY_PROBE.format(page=os.sysconf("SC_PAGE_SIZE"))
    spec = json.dumps({"module": module, "function": function, "kwargs": kwargs, "preload": preload or []})
    proc = subprocess.run([sys.executable, "-c", code, spec], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
    if proc.returncode != 0:
        raise RuntimeError(f"{module}.{function} failed in its memory probe:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
