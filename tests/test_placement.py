"""climb.compute.placement: GPU rules declare their GPUs, memory, time and partition in the rule (not the profile)."""

from __future__ import annotations

import pytest

from climb.compute.placement import CPU_RULE_SIZES, GPU_RULE_SIZES, gpus_for, job_resources


def test_gpu_rule_gets_gpu_partition_from_environment():
    assert job_resources("train_proxy", 4, environ={}) == {"mem_mb": 128000, "runtime": 240, "gpu": 4,
                                                           "slurm_partition": "gpu"}
    assert job_resources("embed", 1, environ={"CLIMB_GPU_PARTITION": "a100"})["slurm_partition"] == "a100"


def test_device_cpu_drops_the_gpu_and_the_partition():
    res = job_resources("dedup", gpus_for("cpu"), environ={})
    assert "gpu" not in res and "slurm_partition" not in res
    assert gpus_for("auto", 8) == 8 and gpus_for("cuda") == 1


def test_unknown_rule_and_gpu_on_cpu_rule_are_errors():
    with pytest.raises(KeyError, match="no size for rule 'nope'"):
        job_resources("nope", 1)
    with pytest.raises(ValueError, match="CPU rule"):
        job_resources("annotate_quality", 1)
    assert not set(GPU_RULE_SIZES) & set(CPU_RULE_SIZES)
