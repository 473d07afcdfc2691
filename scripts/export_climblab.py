from climb.export import write_climblab
from climb.log import log_to

with log_to(snakemake.log[0]):
    write_climblab(list(snakemake.input.corpus), list(snakemake.input.index), snakemake.input.superclusters,
                   list(snakemake.input.filters), snakemake.output[0], batch_rows=snakemake.params.batch_rows)
