from climb.core.config import job_settings
from climb.core.log import log_to
from climb.search.pipeline import sample_pool_mixture

with log_to(snakemake.log[0]):
    sample_pool_mixture(snakemake.input.prior, int(snakemake.wildcards.i),
                        job_settings(snakemake.params.search, snakemake.config, "search"), snakemake.params.seed,
                        snakemake.output[0])
