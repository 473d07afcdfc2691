from climb.export import plan_export
from climb.log import log_to

with log_to(snakemake.log[0]):
    plan_export(list(snakemake.input.index), snakemake.input.superclusters, list(snakemake.input.filters),
                snakemake.input.mixture, snakemake.output[0], **snakemake.params.settings)
