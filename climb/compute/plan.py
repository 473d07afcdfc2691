"""What a run will spend, before it starts: GPU jobs per rule and GPU hours from a Snakemake dry run.

``python -m climb.compute.plan --profile slurm --configfile configs/paper-scale.yaml`` runs
``snakemake -n`` with those arguments and reads every job it lists (rule, resources as the profile
resolved them); ``snakemake -n ... | python -m climb.compute.plan`` reads a dry run already made. A job's
GPU hours are ``gpu x runtime / 60``: ``gpu`` (or a ``gpu:N`` in ``gres``) is the GPUs it asks
for, ``runtime`` the minutes the profile or rule gives it (SLURM's time limit, so an upper bound of
what the job uses).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

_JOB_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) (?P<rule>[A-Za-z_][A-Za-z0-9_]*):\s*$")
_GRES_GPU = re.compile(r"(?:^|,)gpu(?::[A-Za-z0-9_.]+)?:(?P<n>\d+)")


class PlanError(ValueError):
    """The dry run cannot be read as a list of jobs."""


@dataclass
class RulePlan:
    """The jobs of one rule in a dry run."""

    rule: str
    jobs: int = 0
    gpu_jobs: int = 0
    gpus: int = 0                 # GPUs summed over the jobs
    runtime_min: float = 0.0      # minutes summed over the jobs
    gpu_hours: float = 0.0
    partitions: set[str] = field(default_factory=set)

    def as_dict(self) -> dict:
        return {"rule": self.rule, "jobs": self.jobs, "gpu_jobs": self.gpu_jobs, "gpus": self.gpus,
                "runtime_min": self.runtime_min, "gpu_hours": round(self.gpu_hours, 3),
                "partitions": sorted(self.partitions)}


def parse_resources(line: str) -> dict[str, str]:
    """``resources: a=1, b=x`` -> {"a": "1", "b": "x"} (values kept as text)."""
    body = line.split(":", 1)[1]
    out = {}
    for item in body.split(","):
        if "=" in item:
            key, value = item.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def parse_dry_run(text: str) -> list[tuple[str, dict[str, str]]]:
    """Every job a ``snakemake -n`` listing shows, as (rule, resources). Needs the job list (no --quiet)."""
    jobs: list[tuple[str, dict[str, str]]] = []
    current: str | None = None
    resources: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.rstrip()
        header = _JOB_HEADER.match(line)
        if header:
            if current is not None:
                jobs.append((current, resources))
            current, resources = header.group("rule"), {}
        elif current is not None and line.strip().startswith("resources:"):
            resources = parse_resources(line.strip())
        elif current is not None and not line.strip():
            jobs.append((current, resources))
            current, resources = None, {}
    if current is not None:
        jobs.append((current, resources))
    if not jobs and "Nothing to be done" not in text:
        raise PlanError("no job found in the dry run: run `snakemake -n` without --quiet, or check its errors")
    return jobs


def _number(value: str | None, what: str, rule: str) -> float:
    if value is None or value in ("", "None", "<TBD>"):
        return 0.0
    try:
        return float(value)
    except ValueError as err:
        raise PlanError(f"rule {rule}: resource {what}={value!r} is not a number") from err


def gpus_of(rule: str, resources: dict[str, str]) -> int:
    """GPUs a job asks for: resource ``gpu`` (--gpus), else a ``gpu:N`` in ``gres``."""
    if resources.get("gpu") not in (None, "", "0", "None"):
        return int(_number(resources["gpu"], "gpu", rule))
    match = _GRES_GPU.search(resources.get("gres", ""))
    return int(match.group("n")) if match else 0


def summarize(jobs: list[tuple[str, dict[str, str]]]) -> dict[str, RulePlan]:
    """Per rule: jobs, GPU jobs, GPUs, minutes and GPU hours, in the order rules first appear."""
    plans: dict[str, RulePlan] = {}
    for rule, resources in jobs:
        if rule == "all":
            continue
        plan = plans.setdefault(rule, RulePlan(rule))
        runtime = _number(resources.get("runtime"), "runtime", rule)
        gpus = gpus_of(rule, resources)
        plan.jobs += 1
        plan.runtime_min += runtime
        if gpus:
            plan.gpu_jobs += 1
            plan.gpus += gpus
            plan.gpu_hours += gpus * runtime / 60
        if resources.get("slurm_partition"):
            plan.partitions.add(resources["slurm_partition"])
    return plans


def format_plan(plans: dict[str, RulePlan]) -> str:
    """The table the user reads before spending GPU hours."""
    gpu = [p for p in plans.values() if p.gpu_jobs]
    cpu = [p for p in plans.values() if not p.gpu_jobs]
    lines = ["GPU jobs (GPU hours = GPUs x runtime limit, an upper bound):",
             f"  {'rule':<24}{'jobs':>8}{'GPUs/job':>10}{'min/job':>9}{'GPU hours':>12}  partition"]
    for p in sorted(gpu, key=lambda p: -p.gpu_hours):
        lines.append(f"  {p.rule:<24}{p.gpu_jobs:>8}{p.gpus / p.gpu_jobs:>10.3g}{p.runtime_min / p.jobs:>9.0f}"
                     f"{p.gpu_hours:>12.1f}  {','.join(sorted(p.partitions)) or '-'}")
    total_gpu_jobs = sum(p.gpu_jobs for p in gpu)
    total_hours = sum(p.gpu_hours for p in gpu)
    lines.append(f"  {'total':<24}{total_gpu_jobs:>8}{'':>10}{'':>9}{total_hours:>12.1f}")
    cpu_jobs = sum(p.jobs for p in cpu)
    cpu_hours = sum(p.runtime_min for p in cpu) / 60
    lines.append(f"CPU jobs: {cpu_jobs} in {len(cpu)} rules, {cpu_hours:.1f} job-hours of runtime limits "
                 f"({', '.join(f'{p.rule} {p.jobs}' for p in cpu)})")
    return "\n".join(lines)


def plan_summary(plans: dict[str, RulePlan]) -> dict:
    """JSON-ready totals and per-rule rows."""
    return {
        "gpu_jobs": sum(p.gpu_jobs for p in plans.values()),
        "gpu_hours": round(sum(p.gpu_hours for p in plans.values()), 3),
        "cpu_jobs": sum(p.jobs for p in plans.values() if not p.gpu_jobs),
        "rules": {p.rule: p.as_dict() for p in plans.values()},
    }


def preflight_lines(text: str) -> list[str]:
    """The preflight's findings the dry run printed (climb.compute.preflight: demo settings, what the caches lack)."""
    from climb.compute.preflight import PREFIX

    return [line for line in text.splitlines() if line.startswith(PREFIX)]


def dry_run(snakemake_args: list[str], snakemake: str | None = None) -> str:
    """Output of ``snakemake -n`` with the user's arguments (profile, configfile, targets)."""
    exe = snakemake or str(Path(sys.executable).parent / "snakemake")
    args = [a for a in snakemake_args if a not in ("-q", "--quiet")]
    proc = subprocess.run([exe, "-n", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise PlanError(f"snakemake -n failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout + "\n" + proc.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m climb.compute.plan",
        description="GPU jobs per rule and estimated GPU hours of a run, from a Snakemake dry run. Arguments not "
                    "listed here go to `snakemake -n` (e.g. --profile slurm --configfile configs/paper-scale.yaml); "
                    "without any, a dry run's output is read from stdin.")
    parser.add_argument("--json", type=Path, help="also write the plan as JSON to this file")
    args, rest = parser.parse_known_args(argv)
    text = dry_run(rest) if rest else sys.stdin.read()
    plans = summarize(parse_dry_run(text))
    preflight = preflight_lines(text)
    if preflight:
        print("\n".join(preflight) + "\n")
    print(format_plan(plans))
    if args.json:
        args.json.write_text(json.dumps(plan_summary(plans), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
