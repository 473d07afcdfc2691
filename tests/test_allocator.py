"""climb/compute/allocator.py: after keep_freed_memory, a CPU job's large tensors reuse pages already mapped instead
of having the kernel map and zero-fill them again every step; the jobs that run torch on the CPU call it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from climb.compute import allocator

# Allocates and frees a 32 MiB tensor (the embedded default proxy's logits) 20 times, as training steps do, and
# reports the minor page faults of the last 10 rounds (the first ones fill the heap once).
STEPS = """
import json, resource, sys
import torch
from climb.compute.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "kept" else False
def step():
    logits = torch.empty(16 * 128 * 4096, dtype=torch.float32)
    logits.fill_(1.0)
    return float(logits[-1])
for _ in range(10):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _faults(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_kept_memory_is_reused_without_page_faults():
    default, kept = _faults("default"), _faults("kept")
    pages = 10 * 32 * 1024 * 1024 // 4096  # what glibc's default maps afresh: 8,192 pages a round
    assert default["faults"] >= pages // 2, default  # the cost this module removes is there without it
    assert kept["applied"] is True
    assert kept["faults"] < pages // 20, kept


def test_applied_once_per_process(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", True)
    assert allocator.keep_freed_memory() is True  # no second mallopt: a forked job inherits its server's setting
