"""climb.compute.device: the device choice is logged, and a job given (or configured for) a GPU that finds none stops."""

from __future__ import annotations

import logging
import socket

import pytest

from climb.compute.device import FAKE_GPUS_ENV, DeviceError, granted_gpus, probe_gpus, resolve_device


def no_gpu():
    return {"torch_cuda": False, "torch_devices": 0, "faiss_gpus": 0, "torch_cuda_build": "none (CPU-only torch)"}


def torch_gpu_only():  # CUDA torch, but PyPI's faiss-cpu over conda's faiss-gpu
    return {"torch_cuda": True, "torch_devices": 1, "faiss_gpus": 0, "torch_cuda_build": "12.4"}


def test_auto_without_gpu_runs_on_cpu_and_says_why(caplog):
    with caplog.at_level(logging.INFO, logger="climb.compute.device"):
        assert resolve_device("auto", "embed.device", environ={}, probe=no_gpu) == "cpu"
    assert "embed.device: device cpu (auto: no GPU given to this job" in caplog.text


def test_auto_with_gpu_uses_it_and_says_why(caplog):
    with caplog.at_level(logging.INFO, logger="climb.compute.device"):
        assert resolve_device("auto", "proxy.device", environ={}, probe=torch_gpu_only) == "cuda"
    assert "device cuda (auto: a GPU is visible" in caplog.text


@pytest.mark.parametrize("env", [{"SLURM_JOB_GPUS": "0"}, {"CUDA_VISIBLE_DEVICES": "0,1"}, {"SLURM_GPUS_ON_NODE": "4"}])
def test_given_gpu_but_none_usable_stops(env):
    with pytest.raises(DeviceError) as err:
        resolve_device("auto", "embed.device", environ=env, probe=no_gpu)
    message = str(err.value)
    assert socket.gethostname() in message and "torch.cuda.is_available()=False" in message
    assert next(iter(env)) in message and "faiss GPUs 0" in message


def test_configured_cuda_without_gpu_stops_even_when_nothing_was_given():
    with pytest.raises(DeviceError, match=r"dedup.device is 'cuda' but torch sees no GPU on host"):
        resolve_device("cuda", "dedup.device", environ={}, probe=no_gpu)


def test_faiss_backend_checks_faiss_not_torch():
    """k-means on a GPU node whose faiss is the CPU build stops, though torch sees the GPU."""
    with pytest.raises(DeviceError, match="faiss sees none"):
        resolve_device("auto", "cluster.gpu", backend="faiss", environ={"SLURM_JOB_GPUS": "0"}, probe=torch_gpu_only)
    assert resolve_device("auto", "embed.device", environ={"SLURM_JOB_GPUS": "0"}, probe=torch_gpu_only) == "cuda"


def test_cpu_is_cpu_without_probing():
    def boom():
        raise AssertionError("probed")
    assert resolve_device("cpu", "embed.device", environ={"SLURM_JOB_GPUS": "0"}, probe=boom) == "cpu"


def test_fake_gpus_way_through_is_named_and_warns(caplog):
    env = {"SLURM_JOB_GPUS": "0", FAKE_GPUS_ENV: "1"}
    with caplog.at_level(logging.WARNING, logger="climb.compute.device"):
        assert resolve_device("auto", "embed.device", environ=env, probe=no_gpu) == "cpu"
    assert FAKE_GPUS_ENV in caplog.text
    with pytest.raises(DeviceError):  # it does not cover a configured `cuda`
        resolve_device("cuda", "embed.device", environ=env, probe=no_gpu)


def test_granted_gpus_ignores_empty_grants():
    assert granted_gpus({"CUDA_VISIBLE_DEVICES": "", "SLURM_GPUS_ON_NODE": "0"}) is None
    assert granted_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) is None
    assert granted_gpus({"SLURM_STEP_GPUS": "2"}) == "SLURM_STEP_GPUS=2"


def test_probe_sees_this_machine():
    seen = probe_gpus()
    assert seen["torch_cuda"] in (True, False) and seen["faiss_gpus"] >= 0  # faiss is a dependency here
