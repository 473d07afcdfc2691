"""Config checking with messages that name the key, before Snakemake's own `validate` fills in defaults."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).parents[1] / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config that does not match the schema; the message names every offending key."""


# libyaml's safe loader where PyYAML was built with it: the same values as yaml.safe_load, ~6x faster on the
# 1,800-line schema that every job importing this module reads
YAML_SAFE_LOADER = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader


def load_schema(path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=YAML_SAFE_LOADER)


# Every mixture strategy: the schema's one list ($defs.strategy). The search's run_search builds all but doremi,
# which trains its own proxies (climb.search.doremi).
STRATEGIES: tuple[str, ...] = tuple(load_schema()["$defs"]["strategy"]["enum"])
SEARCH_STRATEGIES: tuple[str, ...] = tuple(s for s in STRATEGIES if s != "doremi")


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        where = f"under {key}" if error.absolute_path else "at the top level"
        names = ", ".join(f"{'.'.join([*map(str, error.absolute_path), e])}" for e in extra)
        return f"unknown config key {names} {where}; allowed: {', '.join(allowed)}"
    description = error.schema.get("description", "") if isinstance(error.schema, dict) else ""
    expected = {k: v for k, v in error.schema.items() if k in ("type", "enum", "minimum", "maximum",
                                                                "exclusiveMinimum", "exclusiveMaximum")}
    hint = f" (expected {json.dumps(expected)}" + (f": {description.strip()}" if description else "") + ")"
    return f"config key {key}: {error.message}{hint if expected or description else ''}"


def check_config(config: dict[str, Any], schema_path: str | Path = SCHEMA_PATH) -> None:
    """Raise :class:`ConfigError` listing every schema violation, each naming its key."""
    validator = _validator(str(schema_path))
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = "\n".join(f"  - {_describe(e)}" for e in errors)
        raise ConfigError(f"invalid configuration ({len(errors)} problem(s)):\n{lines}")


@functools.lru_cache(maxsize=4)
def _validator(schema_path: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(schema_path))


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the config's result keys (``x-effect: result``, after defaults are filled in) as canonical JSON: what
    the outputs can depend on. A runtime key (threads, devices, batch sizes, ``warm_interpreter``) leaves it as it is,
    as it leaves the outputs."""
    values: dict[str, Any] = {}
    for key, decl in config_keys().items():
        if decl.get("x-effect") == "result":
            with contextlib.suppress(KeyError, TypeError):  # a key without a default, left out
                values[key] = _section(config, key)
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


# --- result vs runtime keys (the `x-effect` annotation on every key of the schema) ---

def _walk(schema: dict[str, Any], path: tuple[str, ...] = ()):
    """(dotted key, schema node) of every key: a leaf, or an object without `properties` (its keys are free-form,
    e.g. `targets`), which is declared as one key. Objects with `properties` are sections, not keys."""
    for name, node in schema.get("properties", {}).items():
        key = (*path, name)
        if "properties" in node:
            yield from _walk(node, key)
        else:
            yield ".".join(key), node


def config_keys(schema: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """dotted key -> its schema node (with its `x-effect`, `x-rules`, `x-test-value` declarations), for every key."""
    return dict(_walk(schema)) if schema is not None else _project_keys()


@functools.lru_cache(maxsize=1)
def _project_keys() -> dict[str, dict[str, Any]]:
    return dict(_walk(load_schema()))


def section_keys(section: str, effect: str) -> list[str]:
    """Keys directly under ``section`` (dotted) declared ``x-effect: effect``, in the schema's order."""
    prefix = f"{section}."
    return [k[len(prefix):] for k, decl in config_keys().items()
            if k.startswith(prefix) and "." not in k[len(prefix):] and decl.get("x-effect") == effect]


def _section(config: dict[str, Any], section: str) -> Any:
    node: Any = config
    for part in section.split("."):
        node = node[part]
    return node


def result_settings(config: dict[str, Any], section: str, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The result keys (``x-effect: result``) directly under ``section``, in the schema's order: what a rule passes
    as params, key by key, so that changing one reruns the jobs whose outputs it can change."""
    node = _section(config, section)
    return {k: node[k] for k in section_keys(section, "result") if k not in exclude}


def runtime_settings(config: dict[str, Any], section: str) -> dict[str, Any]:
    """The runtime keys (``x-effect: runtime``) directly under ``section`` (dotted, e.g. ``embed`` or
    ``quality.teacher.openai``), read from the job's own config (``snakemake.config``). Runtime keys say how a job
    runs, never what it writes, so rules do not pass them as params: changing one reruns nothing."""
    node = _section(config, section)
    return {k: node[k] for k in section_keys(section, "runtime")}


def job_settings(params: dict[str, Any], config: dict[str, Any], section: str) -> dict[str, Any]:
    """A job's settings of one section: the result keys its rule passed as params, and the runtime keys from its
    own config."""
    return {**runtime_settings(config, section), **params}


def reference_markdown(schema: dict[str, Any] | None = None) -> str:
    """docs/config.md: every key with its default, whether it is a result or a runtime key, and its description."""
    schema = schema if schema is not None else load_schema()
    lines = ["# Configuration reference", "",
             "Generated from climb/schemas/config.schema.yaml by `python -m climb.core.config docs/config.md`; "
             "a test fails when it is out of date.", "",
             "**result** keys can change what a rule writes: changing one reruns the rules named (and what reads "
             "their outputs). **runtime** keys say how a job runs (batch sizes, threads, devices, concurrency, "
             "retries, checkpoints, caches), never what it writes: changing one reruns nothing. Same config and seed "
             "give the same bytes for the same result keys, on the same hardware and runtime settings (a runtime "
             "key such as a batch size or a thread count may change floating-point summation order).", ""]
    section = None
    for key, node in config_keys(schema).items():
        top = key.split(".")[0]
        if top != section:
            section = top
            description = " ".join(str(schema["properties"][top].get("description", "")).split())
            lines += ["", f"## `{top}`", "", description, "", "| key | default | effect | description |",
                      "|---|---|---|---|"]
        effect = node.get("x-effect", "undeclared")
        if effect == "result":
            effect = "result: " + ", ".join(f"`{r}`" for r in node.get("x-rules", []))
        default = json.dumps(node.get("default"))
        text = " ".join(str(node.get("description", "")).split()).replace("|", "\\|")
        lines.append(f"| `{key}` | `{default}` | {effect} | {text} |")
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


# --- the embedded default (config.yaml) applies to the embedded corpus only ---

def _schema_defaults_of(default: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``default``'s keys, in its order, with the schema's default of each leaf instead of its value."""
    out: dict[str, Any] = {}
    for key, value in default.items():
        node = schema.get("properties", {}).get(key, {})
        if isinstance(value, dict) and "properties" in node:
            out[key] = _schema_defaults_of(value, node)
        elif "default" in node:
            out[key] = node["default"]
    return out


def apply_embedded_default(config: dict[str, Any], default_path: str | Path,
                           schema: dict[str, Any] | None = None) -> bool:
    """Put the embedded default (``config.yaml``: the demo corpus's fit shards, k-means restarts, budgets) under
    ``config`` in place, unless ``config`` names a corpus (``input.shards``): then a real corpus starts from the
    schema's defaults, not the demo's corpus-specific values, whatever the number of ``--configfile``s. (Keys come in
    the order Snakemake's ``configfile:`` gave them either way, as rule params compare them in order.) True when its
    values apply."""
    with open(default_path, encoding="utf-8") as fh:
        default = yaml.safe_load(fh) or {}
    real = bool((config.get("input") or {}).get("shards"))
    if real:
        default = _schema_defaults_of(default, schema if schema is not None else load_schema())
    _fill_missing(config, default)
    return not real


def _fill_missing(config: dict[str, Any], default: dict[str, Any]) -> None:
    """Add ``default``'s keys that ``config`` lacks, recursively, after its own keys: the order Snakemake gives a
    ``configfile:`` merged under ``--configfile`` (rule params compare dicts in order, so it must not change)."""
    for key, value in default.items():
        if key not in config:
            config[key] = value
        elif isinstance(value, dict) and isinstance(config[key], dict):
            _fill_missing(config[key], value)


def put_on_pythonpath(folder: str | Path) -> None:
    """Put ``folder`` (the workflow's) first on PYTHONPATH, once, so that every job's interpreter, also in a
    ``--sdm conda`` environment that does not install climb, imports this checkout's package."""
    import os

    folder = str(folder)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if folder not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([folder, *parts])


if __name__ == "__main__":
    import sys

    Path(sys.argv[1]).write_text(reference_markdown(), encoding="utf-8")
