"""Which rule reads which config key, recorded while Snakemake parses the Snakefile and builds the DAG.

The workflow's `config` is swapped, right after the Snakefile's `validate(...)`, for a dict that records every read
of a key declared in climb/schemas/config.schema.yaml. Each read is attributed to the rule and directive that made
it: at parse time, to the directive (input, params, threads, ...) whose arguments were being evaluated; at DAG time,
to the rule whose input, output or params function was running. A section (e.g. all of `embed`) handed to a
directive whole counts as a read of every key in it, and is listed as such.

Only reads that make Snakemake rerun a job count as a rule's *trigger* reads: params and input (and output, whose
paths are what a job writes). threads, resources, log, benchmark and the like never rerun a job.
"""

from __future__ import annotations

import contextlib
import inspect
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from climb.core.config import config_keys

TRIGGER_DIRECTIVES = ("input", "output", "params")
# Directive methods of snakemake.workflow.Workflow that a rule's body compiles to.
DIRECTIVES = ("input", "output", "params", "threads", "resources", "log", "benchmark", "conda", "script", "run",
              "localrule", "message", "priority", "group", "shadow", "retries", "wildcard_constraints", "docstring",
              "default_target", "shellcmd", "handover", "cache_rule", "container", "envmodules", "notebook",
              "wrapper", "cwl", "name")
WORKFLOW = "(workflow)"  # reads outside any rule: module-level code of the rule files


@dataclass
class Recorder:
    keys: set[str] = field(default_factory=lambda: set(config_keys()))
    reads: dict[str, set[tuple[str, str]]] = field(default_factory=lambda: defaultdict(set))  # key -> {(rule, dir)}
    whole_sections: set[tuple[str, str, str]] = field(default_factory=set)  # (rule, directive, section)
    pending: set[str] = field(default_factory=set)  # parse time: keys read since the last directive call
    rule: str | None = None  # parse time: the rule being defined
    context: list[tuple[str, str]] = field(default_factory=list)  # DAG time: (rule, directive) being expanded

    def declared(self, path: tuple[str, ...]) -> str | None:
        """The declared key at or above ``path``."""
        for n in range(len(path), 0, -1):
            key = ".".join(path[:n])
            if key in self.keys:
                return key
        return None

    def read(self, key: str) -> None:
        if self.context:
            self.reads[key].add(self.context[-1])
        else:
            self.pending.add(key)

    def flush(self, rule: str, directive: str) -> None:
        for key in self.pending:
            self.reads[key].add((rule, directive))
        self.pending.clear()

    def section_passed(self, rule: str, directive: str, value: Any) -> None:
        """A directive's argument that is (or holds) a config section: every key below it is read."""
        for section in _sections(value):
            self.whole_sections.add((rule, directive, ".".join(section.path)))
            prefix = ".".join(section.path) + "."
            for key in self.keys:
                if key.startswith(prefix):
                    self.reads[key].add((rule, directive))

    def trigger_rules(self, key: str) -> set[str]:
        """Rules whose params, input or output read ``key``."""
        return {rule for rule, directive in self.reads.get(key, ()) if directive in TRIGGER_DIRECTIVES}


def _sections(value: Any) -> Iterator[RecordingDict]:
    if isinstance(value, RecordingDict):
        yield value
    elif isinstance(value, dict):
        for v in dict.values(value):
            yield from _sections(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _sections(v)


RECORDER: Recorder | None = None


class RecordingDict(dict):
    """A config section that tells RECORDER about every declared key read through it."""

    def __init__(self, data: dict | None = None, path: tuple[str, ...] = ()):
        super().__init__(data or {})
        self.path = path

    def _child(self, key: str, value: Any) -> Any:
        path = (*self.path, key)
        declared = RECORDER.declared(path) if RECORDER else None
        if declared is not None:
            RECORDER.read(declared)
            return value
        if isinstance(value, dict):
            return RecordingDict(value, path)
        return value

    def __getitem__(self, key):
        return self._child(key, dict.__getitem__(self, key))

    def get(self, key, default=None):
        return self._child(key, dict.__getitem__(self, key)) if key in self else default

    def _read_all(self) -> None:
        if RECORDER is None:
            return
        prefix = ".".join(self.path) + "." if self.path else ""
        for key in RECORDER.keys:
            if key.startswith(prefix):
                RECORDER.read(key)

    def __iter__(self):
        self._read_all()
        return dict.__iter__(self)

    def keys(self):
        self._read_all()
        return dict.keys(self)

    def items(self):
        return [(k, self[k]) for k in dict.keys(self)]

    def values(self):
        return [self[k] for k in dict.keys(self)]

    def __reduce_ex__(self, protocol):
        return (RecordingDict, (dict(dict.items(self)), self.path))


@contextlib.contextmanager
def recording() -> Iterator[Recorder]:
    """Patch Snakemake so that the next workflow parsed in this process records its config reads."""
    import snakemake.api  # noqa: F401  (first: snakemake.workflow imports it back)
    import snakemake.utils
    from snakemake.rules import Rule
    from snakemake.workflow import Workflow

    global RECORDER
    recorder = RECORDER = Recorder()
    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, replacement: Any) -> None:
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, replacement)

    real_validate = snakemake.utils.validate

    def validate(config, schema, *args, **kwargs):
        caller = inspect.currentframe().f_back.f_globals  # the Snakefile's globals: `config` is looked up there
        schema = Path(caller["workflow"].basedir) / schema  # relative to the Snakefile, not to this file
        result = real_validate(config, str(schema), *args, **kwargs)
        if caller.get("config") is config:
            caller["config"] = RecordingDict(config)
        return result

    patch(snakemake.utils, "validate", validate)

    real_rule = Workflow.rule

    def rule(self, name=None, lineno=None, snakefile=None, checkpoint=False):
        recorder.flush(WORKFLOW, "module")
        recorder.rule = name
        decorate = real_rule(self, name=name, lineno=lineno, snakefile=snakefile, checkpoint=checkpoint)

        def finish(ruleinfo):
            recorder.flush(name, "other")
            recorder.rule = None
            return decorate(ruleinfo)
        return finish

    patch(Workflow, "rule", rule)

    def directive(name: str, real: Any) -> Any:
        def wrapped(self, *args, **kwargs):
            if recorder.rule is not None:
                recorder.flush(recorder.rule, name)
                recorder.section_passed(recorder.rule, name, (args, kwargs))
            return real(self, *args, **kwargs)
        return wrapped

    for name in DIRECTIVES:
        if inspect.isfunction(getattr(Workflow, name, None)):
            patch(Workflow, name, directive(name, getattr(Workflow, name)))

    def expansion(directive_name: str, real: Any) -> Any:
        def wrapped(self, *args, **kwargs):
            recorder.context.append((self.name, directive_name))
            try:
                result = real(self, *args, **kwargs)
                if directive_name == "params":
                    recorder.section_passed(self.name, "params", list(result))
                return result
            finally:
                recorder.context.pop()
        return wrapped

    for method, directive_name in (("expand_input", "input"), ("expand_output", "output"),
                                   ("expand_params", "params"), ("expand_resources", "resources"),
                                   ("expand_log", "log"), ("expand_benchmark", "benchmark")):
        patch(Rule, method, expansion(directive_name, getattr(Rule, method)))
    try:
        yield recorder
    finally:
        recorder.flush(WORKFLOW, "module")
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)
        RECORDER = None


def build_dag(snakefile: Path, workdir: Path, configfiles: list[Path]) -> Any:
    """Parse the workflow and build its DAG in this process (no job runs); returns the DAG."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(resource_settings=ResourceSettings(cores=2),
                                    config_settings=ConfigSettings(configfiles=configfiles),
                                    snakefile=snakefile, workdir=workdir)
        workflow = workflow_api.dag(DAGSettings()).workflow_api._workflow
        workflow._prepare_dag(forceall=False, ignore_incomplete=True, lock_warn_only=True, nolock=True)
        workflow._build_dag()
        return workflow.dag
