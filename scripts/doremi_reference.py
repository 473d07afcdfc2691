from climb.core.log import log_to
from climb.search.doremi import write_reference_mixture

with log_to(snakemake.log[0]):
    write_reference_mixture(snakemake.input.prior, snakemake.output[0])
