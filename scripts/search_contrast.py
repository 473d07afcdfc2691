from climb.core.log import log_to
from climb.search.pipeline import write_contrast

with log_to(snakemake.log[0]):
    write_contrast(snakemake.input.pool, int(snakemake.wildcards.j), snakemake.output[0])
