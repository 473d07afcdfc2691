from climb.log import log_to
from climb.search.pipeline import sample_pool_mixture

with log_to(snakemake.log[0]):
    sample_pool_mixture(snakemake.input.prior, int(snakemake.wildcards.i), snakemake.params.search,
                        snakemake.params.seed, snakemake.output[0])
