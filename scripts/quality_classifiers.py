from climb.core.log import log_to
from climb.quality.classifier import build_classifiers

with log_to(snakemake.log[0]):
    build_classifiers(list(snakemake.output.models), snakemake.output.metrics, snakemake.params.criteria,
                      snakemake.params.settings, snakemake.params.seed,
                      annotations=snakemake.input.get("annotations"))
