from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, schema="climb/schemas/config.schema.yaml")


include: "rules/common.smk"
include: "rules/corpus.smk"
include: "rules/embed.smk"
include: "rules/cluster.smk"


rule all:
    input:
        get_final_outputs(),
    default_target: True
