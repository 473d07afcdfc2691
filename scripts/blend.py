from climb.blend import write_blends
from climb.log import log_to

with log_to(snakemake.log[0]):
    write_blends(snakemake.input.mixture, snakemake.input.superclusters, snakemake.output.megatron,
                 snakemake.output.weights, snakemake.params.megatron_prefix)
