"""Killed jobs: SIGKILL a running job of each long rule family, rerun, get the same bytes as an uninterrupted run.

Each test works on a copy of the shared fixture's finished workdir: it removes one output, starts Snakemake for
it, kills Snakemake and its job with SIGKILL once the job is demonstrably half-way (as a node failure or a
scheduler's time limit would), checks that nothing the killed job wrote looks complete, then unlocks, reruns with
``--rerun-incomplete`` and compares the bytes with the fixture's uninterrupted output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, CI_CONFIG, ROOT

pytestmark = pytest.mark.slow


def digest_tree(path: Path) -> dict[str, str]:
    """sha256 of a file, or of every file under a folder (relative names)."""
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def command(workdir: Path, config: Path, *args: str) -> list[str]:
    return [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(config), *args]


def run(workdir: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(command(workdir, config, *args), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 300) -> None:
    """SIGKILL Snakemake and every job it started as soon as ``ready()``; fail if the job ends first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail("the job finished before it could be killed; the test must catch it half-way")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("the job never reached the point where it is killed")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def log_says(path: Path, text: str) -> Callable[[], bool]:
    return lambda: path.exists() and text in path.read_text(errors="replace")


def kill_and_rerun(workdir: Path, outputs: list[str], target: str, ready: Callable[[], bool],
                   config: Path = CI_CONFIG, rerun_config: Path | None = None) -> None:
    """Start building ``target``, kill it once ``ready()``, then rerun it (with ``rerun_config`` if given)."""
    for out in outputs:
        path = workdir / out
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    proc = subprocess.Popen(command(workdir, config, "--cores", "2", target), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    kill_when(proc, ready)
    config = rerun_config or config
    run(workdir, config, "--unlock")
    # nothing the killed job wrote may be taken as complete: each output is absent, or Snakemake refuses it
    left = [out for out in outputs if (workdir / out).exists()]
    if left:
        dry = subprocess.run(command(workdir, config, "-n", target), capture_output=True, text=True)
        assert dry.returncode != 0 and "incomplete" in (dry.stdout + dry.stderr).lower(), (left, dry.stdout[-2000:])
    run(workdir, config, "--cores", "2", "--rerun-incomplete", target)


def test_killed_embed_job_reruns_to_identical_bytes(pipeline, pipeline_copy):
    """Embedding: the output is written through a temporary file, so a kill leaves no .npy at all."""
    out = "results/embed/embedded-001.npy"
    log = pipeline_copy / "results/logs/embed/embedded-001.log"
    log.unlink(missing_ok=True)
    kill_and_rerun(pipeline_copy, [out], out, log_says(log, "embedding "))
    assert digest_tree(pipeline_copy / out) == digest_tree(pipeline / out)


def test_killed_proxy_training_resumes_to_identical_bytes(pipeline, pipeline_copy):
    mix = "results/search/pool/mix0"
    outputs = [f"{mix}/proxy", f"{mix}/training.json"]
    ckpt = pipeline_copy / f"{mix}/proxy.ckpt" / "state.pt"
    # checkpoint often, so the kill lands after a checkpoint and the rerun resumes from it
    config = yaml.safe_load(CI_CONFIG.read_text())
    config.setdefault("proxy", {})["checkpoint_every"] = 4
    config_path = pipeline_copy / "checkpointing.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    # resumed with other runtime settings (threads, checkpoint interval): they change how the job runs, not the model
    config["proxy"].update(checkpoint_every=6, threads=2)
    rerun_path = pipeline_copy / "other_runtime.yaml"
    rerun_path.write_text(yaml.safe_dump(config, sort_keys=False))
    kill_and_rerun(pipeline_copy, outputs, f"{mix}/training.json", lambda: ckpt.exists(), config_path, rerun_path)
    rerun_log = (pipeline_copy / "results/logs/search/pool/mix0/train_proxy.log").read_text()
    assert "resumed from checkpoint" in rerun_log
    resumed, uninterrupted = digest_tree(pipeline_copy / f"{mix}/proxy"), digest_tree(pipeline / f"{mix}/proxy")
    assert "model.safetensors" in resumed
    # the weights and tokenizer are byte-identical; training.json also records how the run went (seconds,
    # tokens/s, the step it resumed at), which a resumed run may not share, so it is compared without those
    assert {k: v for k, v in resumed.items() if k != "training.json"} == \
        {k: v for k, v in uninterrupted.items() if k != "training.json"}
    run_facts = ("seconds", "tokens_per_second", "resumed_at_step")
    a, b = (json.loads((root / f"{mix}/proxy/training.json").read_text()) for root in (pipeline_copy, pipeline))
    assert a["resumed_at_step"] > 0
    assert {k: v for k, v in a.items() if k not in run_facts} == {k: v for k, v in b.items() if k not in run_facts}


def test_killed_export_reruns_to_identical_bytes(pipeline, pipeline_copy):
    manifest = "results/climbmix/manifest.json"
    parts = sorted(str(p.relative_to(pipeline_copy)) for p in (pipeline_copy / "results/climbmix").glob("part-*.parquet"))
    log = pipeline_copy / "results/logs/export/climbmix.log"
    log.unlink(missing_ok=True)
    assert len(parts) >= 2, "the test config must export several parts, so the kill lands between two"
    kill_and_rerun(pipeline_copy, [*parts, manifest], manifest, log_says(log, "part 0:"))
    for rel in [*parts, manifest]:
        assert digest_tree(pipeline_copy / rel) == digest_tree(pipeline / rel), rel
