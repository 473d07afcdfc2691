from climb.export import select_shard
from climb.log import log_to

with log_to(snakemake.log[0]):
    select_shard(snakemake.input.corpus, snakemake.input.index, snakemake.input.superclusters,
                 list(snakemake.input.filters), snakemake.input.plan, snakemake.output[0],
                 batch_rows=snakemake.params.batch_rows)
