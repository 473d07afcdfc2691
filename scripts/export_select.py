from climb.core.log import log_to
from climb.export.climbmix import select_shard

with log_to(snakemake.log[0]):
    select_shard(snakemake.input.corpus, snakemake.input.index, snakemake.input.superclusters,
                 list(snakemake.input.filters), snakemake.input.plan, snakemake.output[0],
                 batch_rows=snakemake.params.batch_rows)
