from climb.core.log import log_to
from climb.search.doremi import write_doremi_mixture

with log_to(snakemake.log[0]):
    write_doremi_mixture(snakemake.input.dro, snakemake.input.reference, snakemake.wildcards.target,
                         snakemake.output[0],
                         prior_path=snakemake.input.prior)
