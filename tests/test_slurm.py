"""profiles/slurm on a real single-node SLURM (tests/slurm/start.sh): routing, arrays, and the bare profile name.

The cluster test runs the small test config up to k-means assignment through `--profile profiles/slurm` and
reads SLURM's own records (`scontrol show job`, kept MinJobAge=600 s) to check that every GPU rule ran in
partition `gpu` with a GPU (TresPerJob gres:gpu:1), every other rule in `cpu` without one, and that per-shard
rules went as job arrays (fewer sbatch submissions than jobs). It needs root and apt (Debian) to install and
start slurmctld/slurmd/munged; elsewhere it is skipped, except under CI=true where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, CI_CONFIG, ROOT

SLURM_DIR = ROOT / "tests" / "slurm"
PROFILE = ROOT / "profiles" / "slurm"
GPU_RULES = {"embed", "fit_kmeans", "train_proxy", "evaluate_proxy"}
# Node size declared to the test cluster: large enough for the profile's requests as they are.
NODE_CPUS, NODE_MEM_MB = 32, 262144


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"SLURM test cannot run in CI: {reason}")
    pytest.skip(reason)


def _cluster_up() -> bool:
    if not shutil.which("scontrol"):
        return False
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    parts = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=20)
    return "UP" in ping.stdout and {"cpu", "gpu"} <= set(parts.stdout.split())


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running single-node SLURM with partitions cpu and gpu: the one already up, or one started here."""
    started = False
    if not _cluster_up():
        if os.geteuid() != 0:
            _unavailable("starting a local SLURM needs root")
        if not (shutil.which("apt-get") or shutil.which("slurmctld") or Path("/usr/sbin/slurmctld").exists()):
            _unavailable("no apt-get to install SLURM (Debian/Ubuntu only)")
        env = {**os.environ, "LOCAL_SLURM_CPUS": str(NODE_CPUS), "LOCAL_SLURM_MEM_MB": str(NODE_MEM_MB)}
        proc = subprocess.run(["bash", str(SLURM_DIR / "start.sh")], capture_output=True, text=True, env=env,
                              timeout=600)
        assert proc.returncode == 0, f"tests/slurm/start.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        started = True
    node = subprocess.run(["scontrol", "show", "node", "-o"], capture_output=True, text=True, check=True).stdout
    mem = int(re.search(r"RealMemory=(\d+)", node).group(1))
    cpus = int(re.search(r"CPUTot=(\d+)", node).group(1))
    assert mem >= 128000 and cpus >= 8, (
        f"the running SLURM node (RealMemory={mem}, CPUTot={cpus}) is too small for profiles/slurm's requests; "
        f"stop it or start one with tests/slurm/start.sh (LOCAL_SLURM_MEM_MB={NODE_MEM_MB} LOCAL_SLURM_CPUS={NODE_CPUS})")
    yield
    if started:
        subprocess.run(["bash", str(SLURM_DIR / "stop.sh")], capture_output=True, text=True, timeout=120)


def scontrol_jobs(prefix: str) -> list[dict[str, str]]:
    """SLURM's records of this run's jobs (array tasks one record each), from `scontrol show job -o`."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=True).stdout
    jobs = []
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if fields.get("JobName", "").startswith(prefix):
            comment = re.match(r"rule_(.+?)(?:_wildcards_.*)?$", fields.get("Comment", ""))
            fields["rule"] = comment.group(1) if comment else ""
            jobs.append(fields)
    return jobs


@pytest.mark.slow
def test_profile_routes_gpu_rules_to_gpu_partition_with_arrays(slurm_cluster, tmp_path):
    shards = [f"embedded-{i:03d}" for i in range(yaml.safe_load(CI_CONFIG.read_text())["input"]["embedded"]["n_shards"])]
    targets = ["results/corpus/summary.json", *(f"results/kmeans/assign/{s}.parquet" for s in shards)]
    prefix = f"climbtest{uuid.uuid4().hex[:8]}"
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(CI_CONFIG), "--profile", str(PROFILE), "--slurm-jobname-prefix", prefix,
           "--slurm-init-seconds-before-status-checks", "5", "--retries", "0", *targets]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}  # jobs run this venv's python
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    log = proc.stdout + proc.stderr
    jobs = scontrol_jobs(prefix)
    summary = "\n".join(f"{j.get('JobId')} {j['rule']} {j.get('Partition')} {j.get('TresPerJob', '-')} "
                        f"{j.get('JobState')}" for j in jobs)
    assert proc.returncode == 0, f"snakemake --profile slurm failed:\n{log[-6000:]}\nSLURM jobs:\n{summary}"
    for target in targets:
        assert (tmp_path / target).exists(), target

    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(job)
    expected = {"build_embedded_corpus": 1, "ingest": len(shards), "embed": len(shards), "fit_kmeans": 1,
                "assign_clusters": len(shards), "summarize_corpus": 1}
    assert {rule: len(js) for rule, js in by_rule.items()} == expected, summary
    for job in jobs:
        assert job["JobState"] == "COMPLETED", summary
        if job["rule"] in GPU_RULES:
            assert job["Partition"] == "gpu", f"GPU rule {job['rule']} ran in {job['Partition']}\n{summary}"
            assert "gres:gpu:1" in job.get("TresPerJob", ""), f"{job['rule']} got no GPU\n{summary}"
        else:
            assert job["Partition"] == "cpu", f"CPU rule {job['rule']} ran in {job['Partition']}\n{summary}"
            assert "gpu" not in job.get("TresPerJob", ""), f"{job['rule']} asked for a GPU\n{summary}"

    # Arrays: one sbatch per array (ArrayJobId), so fewer submissions than jobs.
    def submission(job):
        return job.get("ArrayJobId") or job["JobId"]

    submissions = {submission(j) for j in jobs}
    assert len(submissions) < len(jobs), summary
    ingest_subs = {submission(j) for j in by_rule["ingest"]}
    assert len(ingest_subs) == 1 and all(j.get("ArrayTaskId") for j in by_rule["ingest"]), summary
    assert "Submitted array job" in log
    print(f"{len(jobs)} jobs in {len(submissions)} submissions\n{summary}")


def test_bare_profile_name_resolves(tmp_path):
    """`snakemake --profile slurm` from the repository after `make setup` (which links ./slurm)."""
    subprocess.run(["make", "-s", "slurm"], cwd=ROOT, check=True, capture_output=True)
    assert (ROOT / "slurm").resolve() == PROFILE.resolve()
    probe = ("import os, sys; from snakemake.cli import get_profile_dir; "
             "print(get_profile_dir(sys.argv[1])[1].resolve())")
    for name in ("slurm", "profiles/slurm"):
        found = subprocess.run([sys.executable, "-c", probe, name], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.strip()
        assert found == str((PROFILE / "config.yaml").resolve()), (name, found)
    # and Snakemake really loads it by that name: the dry run shows the profile's resources
    proc = subprocess.run([str(BIN / "snakemake"), "--profile", "slurm", "--directory", str(tmp_path),
                           "--configfile", str(CI_CONFIG), "-n", "results/embed/embedded-000.npy"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    embed = (proc.stdout + proc.stderr).split("rule embed:")[1].split("\n\n")[0]
    assert "slurm_partition=gpu" in embed and "gpu=1" in embed, embed


def test_profile_site_overrides_by_environment(tmp_path):
    """Partition names and the account come from the environment; no rule or profile edit."""
    env = {**os.environ, "CLIMB_CPU_PARTITION": "short", "CLIMB_GPU_PARTITION": "a100", "CLIMB_SLURM_ACCOUNT": "acme"}
    proc = subprocess.run([str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--profile", str(PROFILE),
                           "--directory", str(tmp_path), "--configfile", str(CI_CONFIG), "-n",
                           "results/embed/embedded-000.npy"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    embed = text.split("rule embed:")[1].split("\n\n")[0]
    ingest = text.split("rule ingest:")[1].split("\n\n")[0]
    assert "slurm_partition=a100" in embed and "slurm_account=acme" in embed, embed
    assert "slurm_partition=short" in ingest and "gpu=" not in ingest, ingest


def test_profile_settings():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["slurm-status-command"] == "?STATUS"  # squeue unless CLIMB_SLURM_STATUS says otherwise
    assert profile["slurm-array-jobs"] == "all"
    # the plugin holds back array jobs when it gets fewer than are ready: never let Snakemake hand it a part
    assert int(profile["jobs"]) >= 10 * int(profile["slurm-array-limit"])
    assert int(profile["max-jobs-per-timespan"].split("/")[0]) >= int(profile["jobs"])
    for rule in GPU_RULES:
        assert profile["set-resources"][rule]["slurm_partition"] == "?GPU"
        assert "gpu" in profile["set-resources"][rule] and "runtime" in profile["set-resources"][rule]
    assert profile["default-resources"]["slurm_partition"] == "?CPU"
