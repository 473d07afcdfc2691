from climb.core.log import log_to
from climb.validation.target_models import validation_table

with log_to(snakemake.log[0]):
    validation_table(snakemake.params.strategies, snakemake.params.seeds, list(snakemake.input.scores),
                     list(snakemake.input.mixtures), snakemake.params.target, snakemake.params.model,
                     snakemake.params.seed, snakemake.output.csv, snakemake.output.seeds, snakemake.output.md,
                     snakemake.output.html, snakemake.output.json,
                     proxy_tokens=snakemake.params.proxy_tokens)
