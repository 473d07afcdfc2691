"""profiles/slurm on a real single-node SLURM (tests/slurm/start.sh): routing, arrays, and the bare profile name.

The cluster tests run the small test config through `--profile profiles/slurm`: up to k-means assignment, and then
one job of each later GPU rule (dedup, train/evaluate proxy, train/evaluate target model) on a copy of the session's
finished run, each with a command-line `--set-resources` of one rule's memory. They read the plugin's sbatch lines
(--verbose) and SLURM's own records (`scontrol show job`, kept MinJobAge=600 s) to check that every GPU rule went to
partition `gpu` with a GPU (`--gpus=1`, TresPerJob gres:gpu:1) and its memory, every other rule to `cpu` without
one, and that per-shard rules went as job arrays (fewer sbatch submissions than jobs). The jobs see the cluster's
fake GPUs; CLIMB_TEST_FAKE_GPUS=1 (climb.compute.device) lets them run on the CPU. It needs root and apt (Debian) to install
and start slurmctld/slurmd/munged; elsewhere it is skipped, except under CI=true where it fails.
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

from climb.compute.device import FAKE_GPUS_ENV
from climb.compute.placement import GPU_RULE_SIZES
from tests.conftest import BIN, CI_CONFIG, ROOT, SLURM_STARTED, locked, session_root

SLURM_DIR = ROOT / "tests" / "slurm"
PROFILE = ROOT / "profiles" / "slurm"
GPU_RULES = set(GPU_RULE_SIZES)  # every rule that uses CUDA when present (climb.compute.placement)
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


def _start_cluster() -> None:
    if os.geteuid() != 0:
        _unavailable("starting a local SLURM needs root")
    if not (shutil.which("apt-get") or shutil.which("slurmctld") or Path("/usr/sbin/slurmctld").exists()):
        _unavailable("no apt-get to install SLURM (Debian/Ubuntu only)")
    env = {**os.environ, "LOCAL_SLURM_CPUS": str(NODE_CPUS), "LOCAL_SLURM_MEM_MB": str(NODE_MEM_MB)}
    proc = subprocess.run(["bash", str(SLURM_DIR / "start.sh")], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, f"tests/slurm/start.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running single-node SLURM with partitions cpu and gpu: the one already up, or one started here. The xdist
    workers of one test session share it (a file lock in the session's common temporary folder); one this session
    started is stopped when the whole session ends (conftest's pytest_sessionfinish), not when these tests do."""
    shared = session_root(tmp_path_factory)
    with locked(shared / "slurm.lock"):
        if not _cluster_up():
            _start_cluster()
            (shared / SLURM_STARTED).touch()
    node = subprocess.run(["scontrol", "show", "node", "-o"], capture_output=True, text=True, check=True).stdout
    mem = int(re.search(r"RealMemory=(\d+)", node).group(1))
    cpus = int(re.search(r"CPUTot=(\d+)", node).group(1))
    assert mem >= 128000 and cpus >= 8, (
        f"the running SLURM node (RealMemory={mem}, CPUTot={cpus}) is too small for profiles/slurm's requests; "
        f"stop it or start one with tests/slurm/start.sh (LOCAL_SLURM_MEM_MB={NODE_MEM_MB} "
        f"LOCAL_SLURM_CPUS={NODE_CPUS})")


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
    # A command-line --set-resources of one rule's memory must not undo any rule's placement.
    proc, jobs, summary = run_on_slurm(tmp_path, prefix, targets, "--set-resources", "embed:mem_mb=4000")
    log = proc.stdout + proc.stderr
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
            assert _mem_mb(job) == pytest.approx(4000 if job["rule"] == "embed" else GPU_RULE_SIZES[job["rule"]][0],
                                                 abs=2), summary  # sbatch --mem from mem_mb (SLURM rounds by 1 MB)
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


def _mem_mb(job: dict) -> int:
    """MinMemoryNode of a SLURM job record (e.g. 4001M, 62.5G) in MB."""
    value = job["MinMemoryNode"]
    return round(float(value[:-1]) * {"M": 1, "G": 1024, "T": 1024 ** 2}[value[-1]])


def run_on_slurm(workdir: Path, prefix: str, targets: list[str], *extra: str):
    """`snakemake --profile profiles/slurm` on the test cluster; its jobs as SLURM records them. The jobs get the
    test cluster's fake GPUs, which no CUDA can open: CLIMB_TEST_FAKE_GPUS=1 (climb.compute.device) lets them use the CPU."""
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(CI_CONFIG), "--profile", str(PROFILE), "--slurm-jobname-prefix", prefix,
           "--slurm-init-seconds-before-status-checks", "5", "--retries", "0", "--verbose", *targets, *extra]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",  # jobs run this venv's python
           FAKE_GPUS_ENV: "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    jobs = scontrol_jobs(prefix)
    summary = "\n".join(f"{j.get('JobId')} {j['rule']} {j.get('Partition')} {j.get('TresPerJob', '-')} "
                        f"mem={j.get('MinMemoryNode')} {j.get('JobState')}" for j in jobs)
    calls = sbatch_calls(proc.stdout + proc.stderr)
    for rule, call in calls:  # the plugin's own sbatch lines: partition and GPU request
        if rule in GPU_RULES:
            assert " -p gpu" in call and "--gpus=" in call, call
        else:
            assert " -p cpu" in call and "--gpus" not in call, call
    print("\n".join(f"{rule}: {call}" for rule, call in calls))
    return proc, jobs, summary + "\n" + "\n".join(call for _, call in calls)


def sbatch_calls(log: str) -> list[tuple[str, str]]:
    """(rule, sbatch command line) of every submission the plugin logged (--verbose)."""
    calls = []
    for line in log.splitlines():
        if "sbatch call: " in line:
            call = line.split("sbatch call: ", 1)[1].strip()
            rule = re.search(r"rule_([A-Za-z0-9_]+?)(?:_wildcards[^'\"\s]*)?['\"\s]", call + " ")
            calls.append((rule.group(1) if rule else "?", call))
    assert calls, "no sbatch call in the log (--verbose)"
    return calls


@pytest.mark.slow
def test_gpu_rules_of_later_stages_on_gpu_partition(slurm_cluster, pipeline, tmp_path):
    """dedup, proxies and validation's target models: one job of each, on a copy of the session's finished run
    (their outputs removed), each run with a command-line override of one rule's memory. Two invocations: a new
    dedup list would make every proxy and target model downstream of it rerun."""
    shutil.copytree(Path(pipeline) / "results", tmp_path / "results", symlinks=True)
    results = tmp_path / "results"
    mix = "results/search/pool/mix0"
    target = next((tmp_path / mix / "scores").glob("*.json")).stem  # the test config's (default) target
    models = [f"{mix}/scores/{target}.json", "results/validation/natural/seed0/scores.json"]  # natural: no proxy upstream
    dedup = ["results/filter/dedup/0.parquet", "results/filter/dedup/counts/0.json"]
    jobs, summaries = [], []
    for targets, removed, override in (
            (models, [*models, f"{mix}/proxy", f"{mix}/training.json", "results/validation/natural/seed0"],
             "train_target_model:mem_mb=4000"),
            (dedup[:1], dedup, "dedup:mem_mb=4000")):
        for path in removed:
            victim = tmp_path / path
            shutil.rmtree(victim) if victim.is_dir() else victim.unlink(missing_ok=True)
        prefix = f"climbtest{uuid.uuid4().hex[:8]}"
        proc, run_jobs, summary = run_on_slurm(tmp_path, prefix, targets, "--rerun-triggers", "mtime",
                                               "--set-resources", override)
        assert proc.returncode == 0, f"snakemake --profile slurm failed:\n{(proc.stdout + proc.stderr)[-6000:]}\n{summary}"
        for path in targets:
            assert (tmp_path / path).exists(), path
        overridden = override.split(":")[0]
        for job in run_jobs:
            assert job["JobState"] == "COMPLETED", summary
            assert job["Partition"] == "gpu" and "gres:gpu:1" in job.get("TresPerJob", ""), summary
            assert _mem_mb(job) == pytest.approx(4000 if job["rule"] == overridden else GPU_RULE_SIZES[job["rule"]][0],
                                                 abs=2), summary
        jobs += run_jobs
        summaries.append(summary)
    summary = "\n".join(summaries)
    assert sorted(j["rule"] for j in jobs) == sorted(
        ["train_proxy", "evaluate_proxy", "train_target_model", "evaluate_target_model", "dedup"]), summary
    logs = "".join(p.read_text() for p in (results / "logs").rglob("*.log") if "slurm" not in p.parts)
    assert FAKE_GPUS_ENV in logs, "no job given the fake GPU said it went through the test-only way"
    print(summary)


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
    # placement lives in the rules: a command-line --set-resources replaces a profile's whole set-resources
    assert "set-resources" not in profile
    assert profile["default-resources"]["slurm_partition"] == "?CPU"


def test_command_line_override_keeps_every_rules_placement(tmp_path):
    """Dry run of the test config's validate target with `--set-resources embed:mem_mb=4000`: every GPU rule keeps
    partition gpu and its GPU, embed gets 4000 MB, train_proxy and train_doremi_proxy ask for proxy.nproc GPUs,
    the target models for validation.model's."""
    ci = yaml.safe_load(CI_CONFIG.read_text())
    ci["proxy"]["nproc"] = 2
    ci["validation"]["model"]["nproc"] = 4
    (tmp_path / "gpus.yaml").write_text(yaml.safe_dump(ci))
    proc = subprocess.run([str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "validate", "--profile", str(PROFILE),
                           "--directory", str(tmp_path), "--configfile", str(tmp_path / "gpus.yaml"), "-n",
                           "--set-resources", "embed:mem_mb=4000"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from climb.compute.plan import parse_dry_run

    seen = {}
    for rule, res in parse_dry_run(proc.stdout + proc.stderr):
        seen.setdefault(rule, res)
    assert set(seen) >= GPU_RULES, sorted(seen)
    gpus = {"train_proxy": "2", "train_doremi_proxy": "2", "train_target_model": "4"}  # proxy.nproc, validation.model
    for rule, res in seen.items():
        if rule in GPU_RULES:
            assert res.get("slurm_partition") == "gpu" and res.get("gpu") == gpus.get(rule, "1"), (rule, res)
            mem = 4000 if rule == "embed" else GPU_RULE_SIZES[rule][0]
            assert res["mem_mb"] == str(mem), (rule, res)
        elif rule != "all":
            assert res.get("slurm_partition") == "cpu" and "gpu" not in res, (rule, res)
