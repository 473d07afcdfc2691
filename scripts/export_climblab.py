from climb.core.log import log_to
from climb.export.climbmix import write_climblab

with log_to(snakemake.log[0]):
    write_climblab(list(snakemake.input.corpus), list(snakemake.input.index), snakemake.input.superclusters,
                   list(snakemake.input.filters), snakemake.output[0], batch_rows=snakemake.params.batch_rows)
