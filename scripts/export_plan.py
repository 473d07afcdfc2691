from climb.core.log import log_to
from climb.export.climbmix import plan_export

with log_to(snakemake.log[0]):
    plan_export(list(snakemake.input.index), snakemake.input.superclusters, list(snakemake.input.filters),
                snakemake.input.mixture, snakemake.output[0], **snakemake.params.settings)
