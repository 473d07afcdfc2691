from climb.core.config import job_settings
from climb.core.log import log_to
from climb.tokens.tokenizer import build_tokenizer

with log_to(snakemake.log[0]):
    build_tokenizer(
        [p for p in snakemake.input if p.endswith(".parquet")],
        snakemake.output[0],
        job_settings(snakemake.params.settings, snakemake.config, "tokenizer"),
        snakemake.params.seed,
    )
