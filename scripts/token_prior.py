from climb.core.log import log_to
from climb.tokens.packed import token_prior

with log_to(snakemake.log[0]):
    token_prior(list(snakemake.input.index), snakemake.input.superclusters, list(snakemake.input.filters), snakemake.output[0])
