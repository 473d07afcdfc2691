from climb.core.log import log_to
from climb.search.pipeline import write_replicate

with log_to(snakemake.log[0]):
    write_replicate(snakemake.input.prior, int(snakemake.wildcards.j), snakemake.output[0])
