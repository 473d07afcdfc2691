from climb.core.config import runtime_settings
from climb.core.log import log_to
from climb.tokens.packed import tokenize_shard

with log_to(snakemake.log[0]):
    tokenize_shard(
        snakemake.input.corpus,
        snakemake.input.assign,
        snakemake.input.tokenizer,
        snakemake.output.bin,
        snakemake.output.index,
        batch_rows=runtime_settings(snakemake.config, "tokenizer")["batch_rows"],
    )
