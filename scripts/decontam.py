from climb.decontam import decontaminate_shard
from climb.log import log_to

with log_to(snakemake.log[0]):
    decontaminate_shard(snakemake.input.corpus, snakemake.input.index, snakemake.output[0], snakemake.params.ngram,
                        snakemake.params.batch_rows)
