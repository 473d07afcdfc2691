from climb.core.log import log_to
from climb.search.pipeline import split_proposal

with log_to(snakemake.log[0]):
    split_proposal(snakemake.input[0], int(snakemake.wildcards.i), snakemake.output[0])
