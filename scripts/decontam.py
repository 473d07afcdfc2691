from climb.core.config import runtime_settings
from climb.core.log import log_to
from climb.filter.decontam import decontaminate_shard

with log_to(snakemake.log[0]):
    decontaminate_shard(snakemake.input.corpus, snakemake.input.index, snakemake.output[0], snakemake.params.ngram,
                        runtime_settings(snakemake.config, "decontam")["batch_rows"])
