"""Security audit: no unpickling of files the user did not produce, API keys only from the environment and never
logged, and nothing from the config reaches a shell unquoted."""

from __future__ import annotations

import ast
import logging
import re
import secrets
from pathlib import Path

import pyarrow as pa
import pytest

from climb.core.io import write_parquet
from climb.core.log import log_to
from climb.quality.annotate import annotate
from climb.quality.openai_teacher import OpenAISettings, TeacherError
from tests.conftest import ROOT
from tests.test_teacher_openai import CRITERIA, FakeTeacher

# --- (a) deserialisation that runs code -------------------------------------------------------------------------

# Calls that unpickle (or otherwise execute) what they read: never on files of unknown origin.
FORBIDDEN = {
    "pickle.load", "pickle.loads", "pickle.Unpickler", "_pickle.load", "_pickle.loads", "cPickle.load",
    "cPickle.loads", "dill.load", "dill.loads", "cloudpickle.load", "cloudpickle.loads", "joblib.load",
    "pandas.read_pickle", "shelve.open", "marshal.load", "marshal.loads", "yaml.unsafe_load", "yaml.full_load",
    "yaml.unsafe_load_all", "yaml.full_load_all", "numpy.lib.format.read_array", "os.system", "os.popen",
}
UNSAFE_YAML_LOADERS = {"Loader", "UnsafeLoader", "FullLoader"}


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _kwarg(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def unsafe_calls(source: str, filename: str = "<source>") -> list[str]:
    """Offending calls in Python source, as 'file:line: call (why)'; import aliases are resolved."""
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name is None:
            continue
        head, _, rest = name.partition(".")
        full = aliases.get(head, head) + (f".{rest}" if rest else "")
        where = f"{filename}:{node.lineno}: {full}"
        if full in FORBIDDEN:
            found.append(f"{where} (unpickles or runs code)")
        elif full == "torch.load" and not _is_const(_kwarg(node, "weights_only"), True):
            found.append(f"{where} without weights_only=True")
        elif full in ("numpy.load", "numpy.lib.npyio.load") and not (
                _kwarg(node, "allow_pickle") is None or _is_const(_kwarg(node, "allow_pickle"), False)):
            found.append(f"{where} with allow_pickle other than False")
        elif full in ("yaml.load", "yaml.load_all"):
            loader = _kwarg(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            loader_name = _dotted(loader) if loader is not None else None
            if loader_name is None or loader_name.rsplit(".", 1)[-1] in UNSAFE_YAML_LOADERS:
                found.append(f"{where} without a safe Loader")
        elif full.startswith("subprocess.") and _kwarg(node, "shell") is not None \
                and not _is_const(_kwarg(node, "shell"), False):
            found.append(f"{where} with shell=True")
        if _is_const(_kwarg(node, "trust_remote_code"), True):
            found.append(f"{where} with trust_remote_code=True (runs code from a model folder)")
    return found


def python_sources() -> list[Path]:
    return sorted([*(ROOT / "climb").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")])


def test_no_unsafe_deserialisation_in_the_sources():
    sources = python_sources()
    assert len(sources) > 50
    found = [f for p in sources for f in unsafe_calls(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))]
    assert found == []


def test_the_audit_catches_what_it_must():
    bad = '''
import pickle, torch, yaml, subprocess, os
import numpy as np
from pickle import loads as pl
from torch import load
import pandas as pd
pickle.load(open("x", "rb"))
pl(b"")
torch.load("state.pt")
torch.load("state.pt", weights_only=False)
load("state.pt", map_location="cpu")
np.load("a.npy", allow_pickle=True)
yaml.load(text)
yaml.load(text, Loader=yaml.Loader)
yaml.unsafe_load(text)
pd.read_pickle("x.pkl")
subprocess.run(cmd, shell=True)
os.system("ls")
AutoModel.from_pretrained(p, trust_remote_code=True)
'''
    assert len(unsafe_calls(bad)) == 13
    good = '''
import torch, yaml, subprocess
import numpy as np
torch.load("state.pt", map_location="cpu", weights_only=True)
np.load("a.npy")
np.load("a.npy", mmap_mode="r", allow_pickle=False)
yaml.safe_load(text)
yaml.load(text, Loader=yaml.SafeLoader)
subprocess.run(["git", "rev-parse", "HEAD"])
AutoModel.from_pretrained(p, trust_remote_code=False)
'''
    assert unsafe_calls(good) == []


# --- (b) API keys: from the environment only, never written out -------------------------------------------------


def test_api_key_is_read_from_the_environment_only():
    with pytest.raises(TeacherError, match=r"unknown key\(s\) \['api_key'\]"):
        OpenAISettings.from_config({"base_url": "http://x/v1", "model": "m", "api_key": "sk-in-a-config-file"})


def test_api_key_never_reaches_logs_or_outputs(tmp_path, monkeypatch):
    key = "sk-secret-" + secrets.token_hex(16)
    monkeypatch.setenv("CLIMB_SECRET_TEACHER_KEY", key)
    server = FakeTeacher()
    level = logging.getLogger().level
    try:
        teacher = {"kind": "openai", "openai": {
            "base_url": server.base_url, "model": "fake-teacher", "api_key_env": "CLIMB_SECRET_TEACHER_KEY",
            "timeout_s": 0.3, "max_retries": 3, "backoff_s": 0.01, "max_backoff_s": 0.02, "max_concurrency": 2}}
        texts = ["a fine document", "busy [429x1] doc", "broken [500x2] doc", "odd [malformedx1] doc",
                 "slow [timeoutx1] doc"]
        corpus = tmp_path / "corpus.parquet"
        write_parquet(corpus, pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": texts}))
        log = tmp_path / "annotate.log"
        out = tmp_path / "annotations.parquet"
        with log_to(log):
            logging.getLogger().setLevel(logging.DEBUG)  # whatever any library logs at any level
            annotate([str(corpus)], str(out), CRITERIA, teacher, len(texts), 1, cache_path=str(tmp_path / "cache.jsonl"))
        # a job that fails on the key itself (HTTP 401) writes its error, and the key stays out of that too
        write_parquet(corpus, pa.table({"id": ["k"], "text": ["wrong key [401]"]}))
        with pytest.raises(TeacherError, match="HTTP 401") as err, log_to(log):
            logging.getLogger().setLevel(logging.DEBUG)
            annotate([str(corpus)], str(tmp_path / "other.parquet"), CRITERIA, teacher, 1, 1,
                     cache_path=str(tmp_path / "cache.jsonl"))
    finally:
        server.close()
        logging.getLogger().setLevel(level)
    assert set(server.auth) == {f"Bearer {key}"}  # the key was used on every request
    text = log.read_text()
    assert "retry 1/3" in text and "invalid answer" in text and "HTTP 401" in text  # the log is not empty
    assert key not in str(err.value)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"annotate.log", "annotations.parquet", "cache.jsonl"}
    for path in written:
        assert key.encode() not in path.read_bytes(), f"the API key was written to {path}"


# --- (c) config values never reach a shell unquoted --------------------------------------------------------------

PLACEHOLDER = re.compile(r"(?<!\{)\{(?!\{)([^{}]*)\}")
SAFE_UNQUOTED = re.compile(r"^(threads|resources\.\w+)$")  # numbers Snakemake computes, not strings from a user


def shell_directives(text: str) -> list[tuple[int, str, str]]:
    """(line, directive, body) of every ``shell:`` / ``run:`` directive and ``shell(...)`` call of a workflow file."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s+)(shell|run):\s*(.*)$", line)
        if m:
            indent, body = len(m.group(1)), [m.group(3)]
            for nxt in lines[i + 1:]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                body.append(nxt)
            found.append((i + 1, m.group(2) + ":", "\n".join(body)))
        elif re.search(r"(?<![\w.])shell\(", line):
            found.append((i + 1, "shell()", line))
    return found


def unquoted_placeholders(body: str) -> list[str]:
    """``{...}`` fields of a shell command that are not quoted with ``:q`` (``{threads}`` excepted)."""
    return [f for f in PLACEHOLDER.findall(body) if not f.endswith(":q") and not SAFE_UNQUOTED.match(f.strip())]


def workflow_files() -> list[Path]:
    return [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]


def test_no_config_value_reaches_a_shell_unquoted():
    files = workflow_files()
    assert len(files) > 5
    offences, directives = [], []
    for path in files:
        for line, kind, body in shell_directives(path.read_text(encoding="utf-8")):
            where = f"{path.relative_to(ROOT)}:{line}"
            directives.append(f"{where} {kind}")
            if kind != "shell:":
                offences.append(f"{where}: {kind} runs Python that may build a shell command; use script:")
            offences += [f"{where}: {{{f}}} is not quoted, write {{{f}:q}}" for f in unquoted_placeholders(body)]
    assert offences == []
    # Today every rule runs a script: (Python, no shell). A new shell: rule must quote every field with :q; this
    # assertion makes whoever adds one look at this test.
    assert directives == []


def test_the_shell_check_catches_what_it_must():
    rules = '''
rule a:
    params:
        k=config["cluster"]["k"],
    threads: 4
    shell:
        "tool --k {params.k} --in {input:q} --threads {threads} > {output} 2> {log:q}; echo {{literal}}"

rule b:
    shell:
        """
        cp {input:q} {output:q}
        """

rule c:
    run:
        shell("echo {wildcards.name}")
'''
    found = shell_directives(rules)
    assert [(kind, line) for line, kind, _ in found] == [("shell:", 6), ("shell:", 10), ("run:", 16), ("shell()", 17)]
    assert unquoted_placeholders(found[0][2]) == ["params.k", "output"]
    assert unquoted_placeholders(found[1][2]) == []
    assert unquoted_placeholders(found[3][2]) == ["wildcards.name"]
