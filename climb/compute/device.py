"""The device a GPU-capable job runs on (embed, k-means, dedup, proxies, lm-eval): chosen once, logged, and never a
silent fall-back to the CPU when the job was given a GPU.

``auto`` uses CUDA when the backend sees a GPU and logs why it chose what it chose. A job configured ``cuda``, or
given a GPU by the scheduler (``SLURM_JOB_GPUS``, ``SLURM_STEP_GPUS``, ``SLURM_GPUS_ON_NODE``) or by
``CUDA_VISIBLE_DEVICES``, that finds no usable GPU stops at once with :class:`DeviceError`, naming the host and what
it saw (torch.cuda, faiss's GPU count): on a node whose CUDA is broken it would otherwise run ~100x slower.

The one way through, for tests only: ``CLIMB_TEST_FAKE_GPUS=1`` (tests/slurm's single-node SLURM declares fake GPU
devices that no CUDA can open) lets a job that was given such a GPU run on the CPU, with a warning.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping
from typing import Literal

log = logging.getLogger(__name__)

FAKE_GPUS_ENV = "CLIMB_TEST_FAKE_GPUS"
GRANT_VARS = ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE", "CUDA_VISIBLE_DEVICES")
Backend = Literal["torch", "faiss"]


class DeviceError(RuntimeError):
    """A job that must run on a GPU found none."""


def granted_gpus(environ: Mapping[str, str] | None = None) -> str | None:
    """``VAR=value`` of the first variable saying this job was given GPUs, else None."""
    env = os.environ if environ is None else environ
    for var in GRANT_VARS:
        value = env.get(var, "").strip()
        if value and value not in ("-1", "NoDevFiles", "none") and not (var == "SLURM_GPUS_ON_NODE" and value == "0"):
            return f"{var}={value}"
    return None


def probe_gpus() -> dict[str, object]:
    """What this process sees: torch.cuda (available, device count) and faiss's GPU count (-1: no faiss)."""
    seen: dict[str, object] = {"torch_cuda": False, "torch_devices": 0, "faiss_gpus": -1}
    try:
        import torch

        seen["torch_cuda"] = bool(torch.cuda.is_available())
        seen["torch_devices"] = int(torch.cuda.device_count()) if seen["torch_cuda"] else 0
        seen["torch_cuda_build"] = torch.version.cuda or "none (CPU-only torch)"
    except ImportError:
        seen["torch_cuda_build"] = "no torch"
    try:
        import faiss

        seen["faiss_gpus"] = int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0
    except ImportError:
        pass
    return seen


def _describe(seen: Mapping[str, object]) -> str:
    return (f"torch.cuda.is_available()={seen['torch_cuda']}, torch.cuda.device_count()={seen['torch_devices']}, "
            f"torch CUDA build {seen.get('torch_cuda_build', '?')}, faiss GPUs "
            f"{seen['faiss_gpus'] if seen['faiss_gpus'] != -1 else 'n/a (no faiss)'}")


def resolve_device(requested: str, what: str, backend: Backend = "torch", environ: Mapping[str, str] | None = None,
                   probe: Callable[[], Mapping[str, object]] = probe_gpus) -> str:
    """'cuda' or 'cpu' for a job configured ``requested`` (auto|cpu|cuda); ``what`` names the setting in messages.

    Raises :class:`DeviceError` when the job is configured ``cuda`` or was given a GPU and ``backend`` sees none."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"{what}: device {requested!r}, expected auto, cpu or cuda")
    env = os.environ if environ is None else environ
    if requested == "cpu":
        log.info("%s: device cpu (configured)", what)
        return "cpu"
    seen = probe()
    usable = seen["faiss_gpus"] > 0 if backend == "faiss" else bool(seen["torch_cuda"])  # type: ignore[operator]
    if usable:
        log.info("%s: device cuda (%s; %s)", what, "configured" if requested == "cuda" else "auto: a GPU is visible",
                 _describe(seen))
        return "cuda"
    granted = granted_gpus(env)
    where = f"on host {socket.gethostname()}"
    if requested == "cuda":
        raise DeviceError(f"{what} is 'cuda' but {backend} sees no GPU {where} ({_describe(seen)}; "
                          f"{granted or 'no GPU variable set'}). Check the node's driver and that the environment "
                          f"has the CUDA builds (envs/gpu.yaml), or set {what}: auto / cpu.")
    if granted:
        if env.get(FAKE_GPUS_ENV) == "1":
            log.warning("%s: device cpu: this job was given a GPU (%s) that %s cannot use %s, and %s=1 (the test "
                        "cluster's fake GPUs) lets it run on the CPU", what, granted, backend, where, FAKE_GPUS_ENV)
            return "cpu"
        raise DeviceError(f"{what} is 'auto' and this job was given a GPU ({granted}), but {backend} sees none {where} "
                          f"({_describe(seen)}). Stopping rather than running on the CPU: check the node's driver and "
                          f"the environment's CUDA builds (envs/gpu.yaml), or set {what}: cpu.")
    log.info("%s: device cpu (auto: no GPU given to this job and %s sees none; %s)", what, backend, _describe(seen))
    return "cpu"
