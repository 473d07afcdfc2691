"""envs/*.yaml (conda, for --software-deployment-method conda) pin what requirements.lock and pyproject.toml pin.

conda cannot run here, so these tests read the files: every version an env names must equal the project's pin.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
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


# CPU-only builds of GPU packages: none may be in the GPU env (they would replace conda's CUDA builds).
CPU_VARIANTS = {"faiss-cpu", "cpuonly", "pytorch-cpu", "torch", "torchvision-cpu", "jax-cpu"}


@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_env_file_parses_and_pip_section_has_no_path(name):
    """Snakemake copies an env file to .snakemake/conda/<hash>.yaml before `conda env create`: a relative path
    (`-e ..`, `./pkg`, `file:`) in its pip section then points somewhere else, so none may be there."""
    env = yaml.safe_load((ROOT / "envs" / f"{name}.yaml").read_text())
    assert env["name"] and env["channels"] and isinstance(env["dependencies"], list)
    pip = [item for dep in env["dependencies"] if isinstance(dep, dict) for item in dep.get("pip", [])]
    for item in pip:
        assert not re.search(r"(^-e\b|^-r\b|^\.|/|\\|file:|\.\.)", item.strip()), (
            f"envs/{name}.yaml: pip entry {item!r} is a path; it breaks when Snakemake copies the env file")


@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_no_package_in_both_conda_and_pip(name):
    conda, pip, _ = _env(name)
    both = {CONDA_TO_PIP.get(c, c) for c in conda} & set(pip) | set(conda) & set(pip)
    assert not both, f"envs/{name}.yaml pins {sorted(both)} in both its conda and its pip section"


def test_gpu_env_names_no_cpu_only_variant():
    env = yaml.safe_load((ROOT / "envs" / "gpu.yaml").read_text())
    conda, pip, _ = _env("gpu")
    names = set(conda) | set(pip)
    assert not names & CPU_VARIANTS, f"envs/gpu.yaml names CPU-only builds {sorted(names & CPU_VARIANTS)}"
    text = yaml.safe_dump(env["dependencies"])
    assert "+cpu" not in text and "cpu_" not in text, "envs/gpu.yaml asks for a CPU build string"


def test_jobs_import_the_checkout_without_installing_it(tmp_path):
    """The envs do not install climb; the Snakefile puts the workflow folder on PYTHONPATH for every job."""
    assert "put_on_pythonpath(workflow.basedir)" in (ROOT / "Snakefile").read_text()
    probe = "import os; from climb.core.config import put_on_pythonpath as p; p('/wf'); p('/wf'); print(os.environ['PYTHONPATH'])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True,
                         env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}/other"}).stdout.strip()
    assert out == os.pathsep.join(["/wf", str(ROOT), "/other"])
    for name in ("cpu", "gpu"):
        assert "climb" not in " ".join(
            item for dep in yaml.safe_load((ROOT / "envs" / f"{name}.yaml").read_text())["dependencies"]
            if isinstance(dep, dict) for item in dep.get("pip", []))
