import sys

from snakemake.utils import min_version, validate

from climb.core.config import apply_embedded_default, check_config, put_on_pythonpath
from climb.core.snakemake_compat import fix_list_params_changes

min_version("9.0")
fix_list_params_changes()  # `--list-changes params` lists only outputs whose params changed

# Jobs import this checkout's climb, also inside --sdm conda environments (envs/*.yaml do not install it: a relative
# path breaks under .snakemake/conda/, and its pip dependencies would replace conda's CUDA builds).
put_on_pythonpath(workflow.basedir)

# The embedded default (config.yaml) goes under --configfile/--config, unless they name a corpus (input.shards):
# a real corpus starts from the schema's defaults, not the demo's k, fit shards and token budgets.
apply_embedded_default(config, f"{workflow.basedir}/config.yaml")
check_config(config)  # names the key and what was expected
validate(config, schema="climb/schemas/config.schema.yaml")  # fills in the defaults

if workflow.is_main_process:  # once per run, before any job: demo settings, models/data missing from the caches
    from climb.compute.preflight import check as preflight_check

    if preflight_text := preflight_check(config):  # PreflightError under `preflight: strict`
        print(preflight_text, file=sys.stderr)


include: "rules/common.smk"
include: "rules/corpus.smk"
include: "rules/cluster.smk"
include: "rules/quality.smk"
include: "rules/superclusters.smk"
include: "rules/filter.smk"
include: "rules/tokens.smk"
include: "rules/proxy.smk"
include: "rules/search.smk"
include: "rules/export.smk"
include: "rules/report.smk"
include: "rules/validation.smk"


rule all:
    input:
        get_final_outputs(),
    default_target: True


# Local runs: the jobs hand their scripts to one interpreter that has imported torch, transformers and lm-eval
# (climb/core/warm.py; warm_interpreter: false turns it off). Not under SLURM or any other executor.
WARM = {}


onstart:
    import os

    from climb.core.warm import ENV_SOCKET, WarmInterpreter

    os.environ.pop(ENV_SOCKET, None)  # this run's own server or none: not one inherited (an outer run's, a test's)
    if config["warm_interpreter"] and workflow.local_exec:
        WARM["server"] = WarmInterpreter("results/logs/warm_interpreter.log")


onerror:
    if "server" in WARM:
        WARM.pop("server").stop()


onsuccess:
    import os

    if "server" in WARM:
        WARM.pop("server").stop()

    from climb.report.summary import run_summary, write_summary

    mixture = get_export_mixture()
    summaries = get_report_search_summaries() if config["export"]["mixture"] == "search" else []
    summary = run_summary(mixture, "results/climbmix/manifest.json", summaries)
    write_summary(summary)  # results/summary.txt; `make run` prints it after building the report
    if os.environ.get("CLIMB_PRINT_SUMMARY", "1") != "0":
        print(summary)
