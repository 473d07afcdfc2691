from climb.log import log_to
from climb.search.pipeline import fit_regmix_predictor

with log_to(snakemake.log[0]):
    fit_regmix_predictor(snakemake.input.prior, list(snakemake.input.weights), list(snakemake.input.scores),
                         snakemake.params.search, snakemake.params.seed, snakemake.output.model,
                         snakemake.output.summary)
