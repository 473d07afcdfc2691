from climb.log import log_to
from climb.tokenizer import build_tokenizer

with log_to(snakemake.log[0]):
    build_tokenizer(
        [p for p in snakemake.input if p.endswith(".parquet")],
        snakemake.output[0],
        snakemake.params.settings,
        snakemake.params.seed,
    )
