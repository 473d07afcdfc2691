"""Every config key is declared result or runtime (climb/schemas/config.schema.yaml), and the declarations are
checked against the code: the rules that read a key while the DAG is built (tests/config_recording.py) are exactly
the rules it declares, a runtime key is never a rerun trigger, and changing a key on a finished run reruns exactly
the jobs downstream of its rules (none for a runtime key)."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from climb.core.config import check_config, config_hash, config_keys, load_schema
from tests.config_recording import TRIGGER_DIRECTIVES, build_dag, recording
from tests.conftest import CI_CONFIG, ROOT

KEYS = config_keys()
# Rules whose jobs write nothing: they only name what the run builds.
TARGET_RULES = {"all", "validate"}


def nested(key: str, value) -> dict:
    out: dict = {}
    node = out
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return out


def merge(base: dict, new: dict) -> dict:
    for key, value in new.items():
        base[key] = merge(base.get(key, {}), value) if isinstance(value, dict) and isinstance(base.get(key), dict) \
            else value
    return base


def declaration_problems(keys: dict[str, dict]) -> list[str]:
    """What is missing or contradictory in each key's declaration."""
    problems = []
    for key, node in keys.items():
        effect = node.get("x-effect")
        if effect not in ("result", "runtime"):
            problems.append(f"{key}: x-effect is {effect!r}, not result or runtime")
        rules = node.get("x-rules")
        if effect == "result" and not (isinstance(rules, list) and rules):
            problems.append(f"{key}: a result key names the rules whose outputs it changes (x-rules)")
        if effect == "runtime" and rules:
            problems.append(f"{key}: a runtime key reruns nothing, so it names no rules (x-rules: {rules})")
        if ("x-test-value" in node) == ("x-test-exempt" in node):
            problems.append(f"{key}: needs exactly one of x-test-value, x-test-exempt (with its reason)")
    return problems


def test_every_key_is_declared():
    problems = declaration_problems(KEYS)
    assert not problems, "\n".join(problems)


def test_every_test_value_is_valid_and_not_the_default():
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    for key, node in KEYS.items():
        if "x-test-value" not in node:
            continue
        value = node["x-test-value"]
        assert value != node.get("default"), f"{key}: x-test-value equals the default"
        config = merge(copy.deepcopy(default), nested(key, value))
        for when_key, when_value in node.get("x-when", {}).items():
            config = merge(config, nested(when_key, when_value))
        check_config(config)  # raises, naming the key


def test_config_hash_follows_the_result_keys_only():
    """The ClimbMix manifest's config_hash: every result key's test value changes it, no runtime key's does."""
    from climb.bench.common import full_config

    base = full_config(embedded_default=True)
    before = config_hash(base)
    for key, node in KEYS.items():
        if "x-test-value" not in node:
            continue
        changed = config_hash(merge(copy.deepcopy(base), nested(key, node["x-test-value"])))
        assert (changed != before) == (node["x-effect"] == "result"), f"{key} ({node['x-effect']})"


def test_a_new_key_without_a_declaration_fails():
    schema = load_schema()
    schema["properties"]["embed"]["properties"]["new_key"] = {"type": "integer", "default": 1}
    problems = declaration_problems(config_keys(schema))
    assert [p for p in problems if p.startswith("embed.new_key:")] == [
        "embed.new_key: x-effect is None, not result or runtime",
        "embed.new_key: needs exactly one of x-test-value, x-test-exempt (with its reason)"]


def _recorded(tmp_path, extra: dict | None = None, files: tuple[str, ...] = ()):
    configs = [CI_CONFIG]
    tmp_path.mkdir(parents=True, exist_ok=True)
    if extra:
        path = tmp_path / "extra.yaml"
        path.write_text(yaml.safe_dump(extra))
        configs.append(path)
    for name in files:  # inputs the DAG checks for (e.g. pretrained classifier models)
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    with recording() as recorder:
        build_dag(ROOT / "Snakefile", tmp_path, configs)
    return recorder


def _conditions() -> dict[str, list[str]]:
    """x-when condition (JSON) -> keys read only under it (e.g. the openai teacher's keys)."""
    groups: dict[str, list[str]] = {}
    for key, node in KEYS.items():
        if "x-when" in node:
            groups.setdefault(json.dumps(node["x-when"], sort_keys=True), []).append(key)
    return groups


def check_declarations(recorders: dict[str, object]) -> list[str]:
    """Differences between each key's declaration and the rules its recorder saw read it."""
    problems = []
    for key, node in KEYS.items():
        recorder = recorders[json.dumps(node["x-when"], sort_keys=True) if "x-when" in node else ""]
        reads = recorder.reads.get(key, set())
        if node["x-effect"] == "runtime":
            triggers = sorted({f"{rule} ({directive})" for rule, directive in reads if directive in ("params", "input")})
            if triggers:
                problems.append(f"{key} is runtime, but these rules read it as a rerun trigger: {', '.join(triggers)}")
            continue
        seen = {rule for rule, directive in reads if directive in TRIGGER_DIRECTIVES}
        declared = set(node["x-rules"])
        if seen - declared:
            problems.append(f"{key}: read by {sorted(seen - declared)}, which its x-rules do not name")
        if declared - seen:
            problems.append(f"{key}: x-rules names {sorted(declared - seen)}, which never read it")
    whole = set().union(*(recorder.whole_sections for recorder in recorders.values()))
    for rule, directive, section in sorted(whole):
        problems.append(f"rule {rule} passes the whole section `{section}` as {directive}: pass its keys one by "
                            "one (runtime keys not at all)")
    return problems


@pytest.mark.slow
def test_declared_rules_are_the_rules_that_read_each_key(tmp_path):
    recorders = {"": _recorded(tmp_path / "base")}
    for condition, keys in _conditions().items():
        extra: dict = {}
        files: list[str] = []
        for when_key, when_value in json.loads(condition).items():
            merge(extra, nested(when_key, when_value))
        for key in keys:
            merge(extra, nested(key, KEYS[key]["x-test-value"]))
            if key == "quality.classifier.pretrained":
                files += KEYS[key]["x-test-value"].values()
        recorders[condition] = _recorded(tmp_path / f"when{len(recorders)}", extra, tuple(files))
    problems = check_declarations(recorders)
    assert not problems, "\n".join(problems)


# Changed for real on a finished run: every runtime key of issue 16's table, and keys of every stage.
RERUN_KEYS = [
    "embed.batch_size", "proxy.threads", "proxy.checkpoint_every", "evaluation.batch_size",
    "quality.teacher.openai.max_concurrency", "ingest.batch_rows", "embed.device", "cluster.gpu",
    "tokenizer.batch_rows", "proxy.micro_batch_size", "dedup.block_rows", "decontam.batch_rows", "quality.batch_rows",
    "search.max_tries",
    "report.sample_docs", "export.part_tokens", "export.megatron_prefix", "ingest.max_chars", "cluster.niter",
    "quality.classifier.epoch", "prune.min_size", "decontam.ngram", "search.candidates", "search.predictor.max_depth",
    "evaluation.limit", "validation.seeds",
]


def downstream(dag, jobs) -> set:
    """``jobs`` and every job that reads their outputs, transitively."""
    seen = set(jobs)
    stack = list(seen)
    while stack:
        for child in dag.depending[stack.pop()]:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def rerun_problems(dag, node: dict) -> list[str]:
    """How a dry run's jobs differ from the key's declaration: a runtime key reruns nothing; a result key reruns
    jobs of each rule it names and exactly what is downstream of those."""
    rerun = {job for job in dag.needrun_jobs() if job.rule.name not in TARGET_RULES}
    if node["x-effect"] == "runtime":
        return [f"reruns {sorted(map(_name, rerun))[:6]}"] if rerun else []
    rules = set(node["x-rules"]) - TARGET_RULES
    problems = [f"reruns no job of {rule}" for rule in sorted(rules) if not any(j.rule.name == rule for j in rerun)]
    expected = {job for job in downstream(dag, [j for j in rerun if j.rule.name in rules])
                if job.rule.name not in TARGET_RULES}
    if rerun - expected:
        problems.append(f"reruns {sorted(map(_name, rerun - expected))[:6]}, not downstream of {sorted(rules)}")
    if expected - rerun:
        problems.append(f"keeps {sorted(map(_name, expected - rerun))[:6]}, downstream of what reruns")
    return problems


def _name(job) -> str:
    return f"{job.rule.name} {dict(job.wildcards_dict)}" if job.wildcards_dict else job.rule.name


@pytest.mark.slow
def test_changing_a_key_reruns_exactly_its_rules_jobs(pipeline_copy, tmp_path):
    assert not [k for k in RERUN_KEYS if "x-test-value" not in KEYS[k]]
    base = yaml.safe_load(CI_CONFIG.read_text())
    failures = []
    for key in RERUN_KEYS:
        path = tmp_path / f"{key}.yaml"
        path.write_text(yaml.safe_dump(merge(copy.deepcopy(base), nested(key, KEYS[key]["x-test-value"]))))
        dag = build_dag(ROOT / "Snakefile", pipeline_copy, [path])
        failures += [f"{key} ({KEYS[key]['x-effect']}): {problem}" for problem in rerun_problems(dag, KEYS[key])]
    assert not failures, "\n".join(failures)


def test_docs_config_md_is_current():
    from climb.core.config import reference_markdown

    assert (ROOT / "docs/config.md").read_text() == reference_markdown(), \
        "docs/config.md is out of date: run `python -m climb.core.config docs/config.md`"
