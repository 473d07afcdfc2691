"""Where a job runs on a cluster: every rule that uses CUDA when present declares its GPUs in the rule.

A rule's ``resources:`` come from :func:`job_resources`: ``gpu`` (sbatch ``--gpus``), ``mem_mb``, ``runtime`` and,
for a job that asks for a GPU, ``slurm_partition`` = ``$CLIMB_GPU_PARTITION`` (default ``gpu``). Every other job
takes the profile's ``default-resources`` (``$CLIMB_CPU_PARTITION``). So no rule name appears in the profile, a new
GPU rule needs no profile edit, and a command-line ``--set-resources RULE:mem_mb=...`` (which replaces a profile's
whole ``set-resources``) changes that one value of that one rule and nothing else's placement.

Local runs ignore ``slurm_partition``; ``gpu``, ``mem_mb`` and ``runtime`` only constrain a local run that is given
``--resources`` for them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

GPU_PARTITION_ENV = "CLIMB_GPU_PARTITION"
DEFAULT_GPU_PARTITION = "gpu"

# Memory (MB) and time limit (minutes) of each GPU rule at the scale of configs/paper-scale.yaml; `python -m
# climb.compute.plan` multiplies gpu x runtime into GPU hours. Change one on the command line:
# --set-resources train_target_model:runtime=4320
GPU_RULE_SIZES: dict[str, tuple[int, int]] = {
    "embed": (64000, 60),                   # sentence encoder, one job per shard
    "fit_kmeans": (128000, 120),            # faiss k-means on the fit sample
    "dedup": (64000, 60),                   # blocked similarity products inside clusters
    "train_proxy": (128000, 240),           # one proxy LM per mixture
    "train_doremi_proxy": (128000, 240),    # DoReMi's Group DRO proxy (a proxy's size and tokens)
    "evaluate_proxy": (64000, 30),          # lm-eval of one proxy on one target
    "train_target_model": (256000, 1440),   # validation: a 350M target model on 40B tokens (8 GPUs)
    "evaluate_target_model": (64000, 120),  # lm-eval of one target model
}
# CPU rules whose size differs from the profile's default-resources (30 minutes, 8 GB), and the per-shard CPU rules,
# whose runtime here is per input shard: a job that runs a batch of them (input.shards_per_job) asks for that many
# times as long (per_shard_resources).
CPU_RULE_SIZES: dict[str, tuple[int, int]] = {
    "ingest": (8000, 30),
    "score_quality": (8000, 30),
    "cluster_quality_sums": (8000, 30),
    "decontam": (8000, 30),
    "carve_heldout": (8000, 30),
    "quality_filter": (8000, 30),
    "tokenize": (8000, 30),
    "climbmix_select": (8000, 30),
    "assign_clusters": (8000, 15),
    "annotate_quality": (8000, 240),        # the teacher LLM's requests (a served model, not this job's GPU)
    "quality_classifiers": (32000, 60),
}
RULE_SIZES = {**GPU_RULE_SIZES, **CPU_RULE_SIZES}


def gpu_partition(environ: Mapping[str, str] | None = None) -> str:
    """The partition of every job that asks for a GPU."""
    env = os.environ if environ is None else environ
    return env.get(GPU_PARTITION_ENV) or DEFAULT_GPU_PARTITION


def job_resources(rule: str, gpus: int, environ: Mapping[str, str] | None = None) -> dict[str, int | str]:
    """``resources:`` of a rule: its size, and for ``gpus`` > 0 the GPUs and the GPU partition (0: a CPU job,
    which keeps the profile's default partition)."""
    if rule not in RULE_SIZES:
        raise KeyError(f"no size for rule {rule!r} in climb.compute.placement.RULE_SIZES ({sorted(RULE_SIZES)})")
    if gpus < 0:
        raise ValueError(f"rule {rule}: {gpus} GPUs")
    if gpus and rule not in GPU_RULE_SIZES:
        raise ValueError(f"rule {rule} is a CPU rule (climb.compute.placement.CPU_RULE_SIZES) but asks for {gpus} GPUs")
    mem_mb, runtime = RULE_SIZES[rule]
    resources: dict[str, int | str] = {"mem_mb": mem_mb, "runtime": runtime}
    if gpus:
        resources.update(gpu=int(gpus), slurm_partition=gpu_partition(environ))
    return resources


def per_shard_resources(rule: str, gpus: int, shards_in_job: Callable[[Any], int],
                        environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``resources:`` of a per-shard rule, whose job runs one batch of input shards: its runtime is the rule's
    runtime per input shard times ``shards_in_job(wildcards)``, so SLURM's limit and the plan's GPU hours follow
    input.shards_per_job."""
    resources: dict[str, Any] = job_resources(rule, gpus, environ)
    per_shard = int(resources["runtime"])
    resources["runtime"] = lambda wildcards: per_shard * shards_in_job(wildcards)
    return resources


def gpus_for(device: str, gpus: int = 1) -> int:
    """GPUs of a job whose ``device`` setting is auto|cpu|cuda: none when it is pinned to the CPU."""
    return 0 if device == "cpu" else gpus
