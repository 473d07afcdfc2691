from climb.core.log import log_to
from climb.export.blend import write_blends

with log_to(snakemake.log[0]):
    write_blends(snakemake.input.mixture, snakemake.input.superclusters, snakemake.output.megatron,
                 snakemake.output.weights, snakemake.params.megatron_prefix)
