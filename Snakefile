from snakemake.utils import min_version, validate

from climb.config import check_config

min_version("9.0")


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
