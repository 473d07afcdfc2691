"""Shared fixtures: the small test config is run once per session; other tests copy or dry-run against it."""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> Path:
    """The small test config run end to end, once per test session. Returns its workdir (read it, don't write)."""
    reuse = os.environ.get("CLIMB_TEST_PIPELINE")  # developers: a finished run of the test config to reuse
    if reuse and os.environ.get("CI") != "true":
        return Path(reuse)
    workdir = tmp_path_factory.mktemp("pipeline")
    snakemake(workdir, "--cores", "2")
    return workdir


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
    workdir = tmp_path_factory.mktemp("default")
    snakemake(workdir, "--cores", "2", *DEFAULT_TARGETS, configfile=None)
    return workdir


@pytest.fixture
def pipeline_copy(pipeline, tmp_path) -> Path:
    """A private copy of the finished pipeline's workdir, for tests that rerun, kill or change things."""
    dest = tmp_path / "run"
    shutil.copytree(pipeline, dest, symlinks=True)
    return dest


# `make test` runs the suite on 2 xdist workers with `--dist loadgroup`: each worker builds the session fixtures its
# tests use, so every test that reads the CI config's finished run (and the SLURM tests, whose module fixture starts
# and stops one cluster) shares one worker, those of the embedded default another group, and the rest go by module
# (module-scoped fixtures are then built once).
def _xdist_group(item: pytest.Item) -> str:
    names = set(item.fixturenames)
    if names & {"pipeline", "slurm_cluster"}:
        return "pipeline"
    if "default_pipeline" in names:
        return "default_pipeline"
    return item.module.__name__


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_xdist_group(item)))
