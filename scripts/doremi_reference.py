from climb.doremi import write_reference_mixture
from climb.log import log_to

with log_to(snakemake.log[0]):
    write_reference_mixture(snakemake.input.prior, snakemake.output[0])
