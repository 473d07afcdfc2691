from snakemake.utils import min_version, validate

from climb.config import check_config
from climb.snakemake_compat import fix_list_params_changes

min_version("9.0")
fix_list_params_changes()  # `--list-changes params` lists only outputs whose params changed


configfile: f"{workflow.basedir}/config.yaml"  # the embedded default; --configfile merges on top


check_config(config)  # names the key and what was expected
validate(config, schema="climb/schemas/config.schema.yaml")  # fills in the defaults


include: "rules/common.smk"
include: "rules/corpus.smk"
include: "rules/embed.smk"
include: "rules/cluster.smk"
include: "rules/filter.smk"
include: "rules/tokenize.smk"
include: "rules/proxy.smk"
include: "rules/search.smk"
include: "rules/quality.smk"
include: "rules/superclusters.smk"
include: "rules/export.smk"
include: "rules/report.smk"
include: "rules/validation.smk"


rule all:
    input:
        get_final_outputs(),
    default_target: True


onsuccess:
    from climb.summary import run_summary

    mixture = get_export_mixture()
    summaries = get_report_search_summaries() if config["export"]["mixture"] == "search" else []
    print(run_summary(mixture, "results/climbmix/manifest.json", summaries))
