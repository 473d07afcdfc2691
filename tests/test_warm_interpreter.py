"""The warm interpreter of local runs (climb/core/warm.py): a job handed over runs its script in a forked child of
a server that has imported the heavy libraries, with the job's streams, directory, environment and threads; its
exit status, signals and death are the job's; it is never used where the job must run in its own place; and a
pipeline's outputs are the same bytes with it and without it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from climb.core import warm
from tests.conftest import snakemake

JOB = """
import json, os, sys, time
preloaded = "torch" in sys.modules  # a fresh interpreter has not imported torch at this point
from climb.core.warm import PRELOAD
not_preloaded = [name for name in (*PRELOAD, "scipy.io") if name not in sys.modules]
renamings = getattr(sys.modules.get("transformers.conversion_mapping"), "_checkpoint_conversion_mapping_cache", None)
from climb.core.log import log_to
with log_to("job.log"):  # here a job is handed over; inside, stdout and stderr go to the log
    import gc
    import torch
    report = {"gc_frozen": gc.get_freeze_count(), "gc_tracked": len(gc.get_objects()),"pid": os.getpid(), "child": os.environ.get("CLIMB_WARM_CHILD"), "cwd": os.getcwd(),
              "argv": sys.argv[1:], "marker": os.environ.get("JOB_MARKER"), "threads": torch.get_num_threads(),
              "preloaded": preloaded, "not_preloaded": not_preloaded, "renamings_built": renamings is not None}
    with open("report.json", "w") as fh:
        json.dump(report, fh)
    if "exit3" in sys.argv:
        sys.exit(3)
    if "raise" in sys.argv:
        raise ValueError("the job's own error")
    if "sleep" in sys.argv:
        time.sleep(60)
print(json.dumps(report))  # the job's own standard streams
print("to stderr", file=sys.stderr)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One warm interpreter for this module's jobs (ENV_SOCKET is set in this process while it runs)."""
    folder = tmp_path_factory.mktemp("warm")
    interpreter = warm.WarmInterpreter(folder / "server.log")
    assert interpreter.ready, (folder / "server.log").read_text()
    deadline = time.monotonic() + 120  # it takes jobs at once; these tests want the libraries imported
    while "modules preloaded" not in (folder / "server.log").read_text():
        assert time.monotonic() < deadline, (folder / "server.log").read_text()
        time.sleep(0.1)
    yield interpreter
    interpreter.stop()


def start_job(workdir: Path, *args: str, **env: str) -> subprocess.Popen:
    script = workdir / "job.py"
    script.write_text(JOB)
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "JOB_MARKER": "job-env", **env}
    return subprocess.Popen([sys.executable, str(script), *args], cwd=workdir, env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run_job(workdir: Path, *args: str, **env: str) -> tuple[int, dict, str, subprocess.Popen]:
    """Exit status, the job's report, its stderr and its process; the report as printed where the job got that far."""
    proc = start_job(workdir, *args, **env)
    out, err = proc.communicate(timeout=120)
    report = json.loads((workdir / "report.json").read_text())
    if proc.returncode == 0:
        assert json.loads(out.splitlines()[0]) == report, out
    return proc.returncode, report, err, proc


def test_a_job_runs_in_the_warm_interpreter_as_itself(server, tmp_path):
    code, report, err, proc = run_job(tmp_path, "a", "b")
    assert code == 0, err
    assert report["child"] == "1" and report["preloaded"], report  # ran in a child of the server, torch imported
    # and the rest a job's first call would import or build (datasets' scipy.io, transformers' renaming table)
    assert report["not_preloaded"] == [] and report["renamings_built"], report
    # what the server loaded is out of the collector's view: a full collection in the job walks only the job's objects
    assert report["gc_frozen"] > 100_000 and report["gc_tracked"] < report["gc_frozen"] // 10, report
    assert report["pid"] != proc.pid
    assert report["cwd"] == str(tmp_path) and report["argv"] == ["a", "b"] and report["marker"] == "job-env"
    assert report["threads"] == 1  # OMP_NUM_THREADS of the job, not the server's default
    assert "to stderr" in err  # the job's own standard streams
    log = (tmp_path / "job.log").read_text()
    assert "ran in the warm interpreter" in log and "exit status 0" in log


def test_the_jobs_exit_status_and_error_are_the_jobs(server, tmp_path):
    code, report, err, _ = run_job(tmp_path, "exit3")
    assert (code, report["child"]) == (3, "1")
    code, report, err, _ = run_job(tmp_path, "raise")
    assert (code, report["child"]) == (1, "1")
    assert "ValueError: the job's own error" in err
    assert "exit status 1" in (tmp_path / "job.log").read_text()


@pytest.mark.parametrize("where", ["slurm", "other-host", "other-environment", "no-server"])
def test_a_job_runs_in_its_own_process_where_it_must(server, tmp_path, where):
    """Under SLURM (its allocation), on another host, in another Python environment (a conda or container job), or
    with no server to connect to, a job runs as usual."""
    host, prefix, path = json.loads(os.environ[warm.ENV_SOCKET])
    env = {"slurm": {"SLURM_JOB_ID": "42"},
           "other-host": {warm.ENV_SOCKET: json.dumps(["another-host", prefix, path])},
           "other-environment": {warm.ENV_SOCKET: json.dumps([host, "/another/env", path])},
           "no-server": {warm.ENV_SOCKET: json.dumps([host, prefix, str(tmp_path / "warm.sock")])}}[where]
    code, report, err, proc = run_job(tmp_path, **env)
    assert code == 0, err
    assert report["child"] is None and report["pid"] == proc.pid and not report["preloaded"], report
    assert "ran in the warm interpreter" not in (tmp_path / "job.log").read_text()


def _gone(pid: int, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_signal_to_the_job_reaches_its_child(server, tmp_path, signum):
    """SIGTERM is forwarded (exit 128 + 15, as a job killed by it); SIGKILL cannot be, so the server kills the child
    when the job's connection drops (a node failure or a scheduler's kill leaves nothing running)."""
    proc = start_job(tmp_path, "sleep")
    deadline = time.monotonic() + 60
    while not (tmp_path / "report.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    time.sleep(0.2)  # the report written and closed
    child = json.loads((tmp_path / "report.json").read_text())["pid"]
    assert child != proc.pid
    proc.send_signal(signum)
    proc.wait(timeout=30)
    assert proc.returncode == (143 if signum == signal.SIGTERM else -signal.SIGKILL)
    assert _gone(child), f"the child {child} of a killed job still runs"


def test_the_server_stops_with_its_snakemake(tmp_path):
    """Its parent gone (Snakemake killed: no onsuccess/onerror), the server ends, and so do the jobs it runs."""
    parent = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from climb.core.warm import WarmInterpreter\n"
        f"w = WarmInterpreter({str(tmp_path / 'server.log')!r})\n"
        "print(w.process.pid, w.folder, flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
    pid, folder = parent.stdout.readline().split()
    deadline = time.monotonic() + 120
    while not (Path(folder) / warm.SOCKET_NAME).exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    parent.kill()
    parent.wait()
    assert _gone(int(pid)), "the warm interpreter outlived its Snakemake"
    assert not Path(folder).exists()


@pytest.mark.slow
def test_outputs_are_the_same_bytes_without_it(pipeline, pipeline_copy, tmp_path, server):
    """The session's run (warm, the default) and a rerun of an embedding and a proxy without it. The rerun's
    Snakemake inherits another server's ENV_SOCKET (the module's, set in this process): its jobs must not use it."""
    assert warm.ENV_SOCKET in os.environ
    shard, mix = "results/embed/embedded-000.npy", "results/search/pool/mix0"
    logs = [Path("results/logs/embed/embedded-000.log"), Path("results/logs/search/pool/mix0/train_proxy.log"),
            Path("results/logs/search/pool/mix0/evaluate_general.log")]
    handed = [(pipeline / log).read_text().count("ran in the warm interpreter") for log in logs]
    assert handed == [1, 1, 1], handed
    cold = tmp_path / "cold.yaml"
    cold.write_text((Path(__file__).parent / "configs/ci.yaml").read_text() + "\nwarm_interpreter: false\n")
    before = [(pipeline_copy / log).stat().st_mtime_ns for log in logs]
    # two commands: forcing embed with the score as a target would rerun the whole chain from the embeddings
    snakemake(pipeline_copy, "--forcerun", "embed", "--cores", "2", shard, configfile=cold)
    snakemake(pipeline_copy, "--forcerun", "train_proxy", "evaluate_proxy", "--cores", "2",
              f"{mix}/scores/general.json", configfile=cold)
    assert all((pipeline_copy / log).stat().st_mtime_ns != t for log, t in zip(logs, before, strict=True))
    rerun = [(pipeline_copy / log).read_text().count("ran in the warm interpreter") for log in logs]
    assert rerun == [0, 0, 0], rerun  # Snakemake rewrites a rerun job's log: these jobs ran in their own process
    assert (pipeline_copy / shard).read_bytes() == (pipeline / shard).read_bytes()

    def timeless(path: Path) -> dict:
        data = json.loads(path.read_text())
        return {k: v for k, v in data.items() if k not in ("seconds", "tokens_per_second")}

    for name in ("training.json", "scores/general.json"):
        assert timeless(pipeline_copy / mix / name) == timeless(pipeline / mix / name), name
