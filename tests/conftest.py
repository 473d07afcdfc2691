"""Shared fixtures: the small test config is run once per session (once for all xdist workers); other tests copy or
dry-run against it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from climb.bench.common import DATA_ROOT

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = DATA_ROOT  # CLIMB_DATA_ROOT, by default ../shared/data beside the repository
CI_CONFIG = ROOT / "tests" / "configs" / "ci.yaml"
BIN = Path(sys.executable).parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shared_data(*parts: str) -> Path:
    """A path under the data root (CLIMB_DATA_ROOT); skips the test where it is absent, fails instead when CI=true."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        message = f"{path} is absent (real test data: set CLIMB_DATA_ROOT, by default ../shared/data beside the repository)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def snakemake(workdir: Path, *args: str, configfile: Path | None = CI_CONFIG, check: bool = True,
              timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run the project's Snakefile in ``workdir`` with the test config; output captured."""
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), *args]
    if configfile is not None:  # last: --configfile (like --quiet) takes several values and would eat a target
        cmd += ["--configfile", str(configfile)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-5000:]}\n{proc.stderr[-8000:]}")
    return proc


def job_counts(dry_run_output: str) -> dict[str, int]:
    """rule -> job count from the 'Job stats' table of `snakemake -n`."""
    table = dry_run_output.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on ``path`` (created if absent), held for the ``with`` block."""
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def session_root(tmp_path_factory) -> Path:
    """The test session's temporary folder, common to its xdist workers (`make test` runs 2, `--dist loadfile`)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def shared_run(tmp_path_factory, name: str, build) -> Path:
    """``build(workdir)`` once per test session, whichever xdist worker asks first; a worker that asks while it
    runs waits for it. A failed build fails every test that asks, with its message, without building again."""
    root = session_root(tmp_path_factory)
    workdir, done, failed = root / name, root / f"{name}.done", root / f"{name}.failed"
    with locked(root / f"{name}.lock"):
        if failed.exists():
            raise AssertionError(f"the session's {name} run failed (in another worker):\n{failed.read_text()}")
        if not done.exists():
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir()
            try:
                build(workdir)
            except BaseException as err:
                failed.write_text(str(err)[-20000:])
                raise
            done.touch()
    return workdir


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> Path:
    """The small test config run end to end, once per test session. Returns its workdir (read it, don't write)."""
    reuse = os.environ.get("CLIMB_TEST_PIPELINE")  # developers: a finished run of the test config to reuse
    if reuse and os.environ.get("CI") != "true":
        return Path(reuse)
    return shared_run(tmp_path_factory, "pipeline", lambda workdir: snakemake(workdir, "--cores", "2"))


# What the `default_pipeline` fixture builds of the embedded default (config.yaml); stages add their targets.
DEFAULT_TARGETS = [
    "results/corpus/summary.json",
    *(f"results/kmeans/assign/embedded-{i:03d}.parquet" for i in range(4)),
    "results/tokens/prior.json",  # and so quality, super-clusters, filters and tokens
]


@pytest.fixture(scope="session")
def default_pipeline(tmp_path_factory) -> Path:
    """The embedded default (config.yaml, unchanged) run up to DEFAULT_TARGETS, once per session."""
    reuse = os.environ.get("CLIMB_TEST_DEFAULT_PIPELINE")  # developers: a finished run of the embedded default
    if reuse and os.environ.get("CI") != "true":
        return Path(reuse)
    return shared_run(tmp_path_factory, "default",
                      lambda workdir: snakemake(workdir, "--cores", "2", *DEFAULT_TARGETS, configfile=None))


@pytest.fixture
def pipeline_copy(pipeline, tmp_path) -> Path:
    """A private copy of the finished pipeline's workdir, for tests that rerun, kill or change things."""
    dest = tmp_path / "run"
    shutil.copytree(pipeline, dest, symlinks=True)
    return dest


# Modules that run longest (CI's --durations), longest first: `make test` hands modules to its 2 workers in
# this order (--no-loadscope-reorder), so the two shared builds start at once, one per worker, and no long
# module is left to run alone at the end. The rest keep pytest's order.
LONGEST_MODULES = [
    "test_validation.py",  # builds `pipeline` (the CI config end to end)
    "test_embedded_default.py",  # builds `default_pipeline`
    "test_slurm.py",
    "test_search.py",
    "test_proxy_pipeline.py",
    "test_cluster_20newsgroups.py",
    "test_paper_scale.py",
    "test_foundation_pipeline.py",
]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


# Marker (in the session's common temporary folder) of a local SLURM that tests/test_slurm.py started.
SLURM_STARTED = "slurm-started-here"


def pytest_sessionfinish(session):
    """Stop the local SLURM this session started, once every xdist worker is done. It stays up until then because
    snakemake's SLURM plugin runs `scontrol show config` when it is imported, and with SLURM installed but its
    controller down that call waits ~9 s: in every later snakemake command of the session."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    started = session_root(session.config._tmp_path_factory) / SLURM_STARTED
    if started.exists():
        subprocess.run(["bash", str(ROOT / "tests" / "slurm" / "stop.sh")], capture_output=True, text=True,
                       timeout=120)
        started.unlink()
