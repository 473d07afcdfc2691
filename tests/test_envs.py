"""envs/*.yaml (conda, for --software-deployment-method conda) pin what requirements.lock and pyproject.toml pin.

conda cannot run here, so these tests read the files: every version an env names must equal the project's pin.
"""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from tests.conftest import ROOT

# conda-forge package -> the pip package whose pin it must match (CUDA builds on the GPU env)
CONDA_TO_PIP = {"pytorch": "torch", "faiss-gpu": "faiss-cpu", "faiss-cpu": "faiss-cpu"}
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(?P<version>[^\s;]+)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and (m := _PIN.match(line)):
            pins[_norm(m["name"])] = m["version"]
    return pins


def _pyproject() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {_norm(m["name"]): m["version"] for d in deps if (m := _PIN.match(d.strip()))}


def _env(name: str) -> tuple[dict[str, str], dict[str, str], str | None]:
    """(conda pins, pip pins, python version) of envs/<name>.yaml."""
    env = yaml.safe_load((ROOT / "envs" / f"{name}.yaml").read_text())
    conda, pip, python = {}, {}, None
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for item in dep.get("pip", []):
                if item.startswith("-"):
                    continue  # -e .. (climb itself)
                m = _PIN.match(item.strip())
                assert m, f"envs/{name}.yaml: pip dependency {item!r} is not pinned with =="
                pip[_norm(m["name"])] = m["version"]
        else:
            name_, _, rest = dep.partition("=")
            version = rest.split("=")[0]
            if name_ == "python":
                python = version
            elif name_ != "pip":
                assert version, f"envs/{name}.yaml: conda dependency {dep!r} has no version"
                conda[name_] = version
    return conda, pip, python


@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_env_pins_match_the_lock(name):
    lock, direct = _lock(), _pyproject()
    conda, pip, python = _env(name)
    assert pip, f"envs/{name}.yaml pins no pip package"
    for pkg, version in pip.items():
        assert pkg in lock, f"envs/{name}.yaml pins {pkg}=={version}, which requirements.lock does not have"
        assert version == lock[pkg], f"envs/{name}.yaml: {pkg}=={version} but requirements.lock has {lock[pkg]}"
        if pkg in direct:
            assert version == direct[pkg], f"envs/{name}.yaml: {pkg}=={version} but pyproject.toml has {direct[pkg]}"
    for pkg, version in conda.items():
        assert pkg in CONDA_TO_PIP, f"envs/{name}.yaml: conda package {pkg} has no pip counterpart to check"
        pip_name = CONDA_TO_PIP[pkg]
        assert version == lock[pip_name], f"envs/{name}.yaml: {pkg}={version} but requirements.lock has {pip_name}=={lock[pip_name]}"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("requires-python", "")
    assert python and python.split(".")[:2] == ["3", "11"], f"envs/{name}.yaml: python={python}"
    assert "3.11" in requires or not requires


def test_envs_cover_every_direct_dependency():
    """Each env holds every direct dependency the rules import (snakemake itself runs outside the envs)."""
    direct = set(_pyproject()) - {"snakemake", "snakemake-executor-plugin-slurm"}
    for name in ("cpu", "gpu"):
        conda, pip, _ = _env(name)
        have = set(pip) | {CONDA_TO_PIP[c] for c in conda}
        assert direct <= have, f"envs/{name}.yaml lacks {sorted(direct - have)}"


def test_gpu_env_has_cuda_builds():
    conda, pip, _ = _env("gpu")
    env_text = (ROOT / "envs" / "gpu.yaml").read_text()
    assert "faiss-gpu" in conda and "pytorch" in conda
    assert re.search(r"pytorch=[\d.]+=\*cuda\*", env_text), "the GPU env must ask for a CUDA build of pytorch"
    assert "torch" not in pip and "faiss-cpu" not in pip
