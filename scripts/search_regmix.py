from climb.core.config import job_settings
from climb.core.log import log_to
from climb.search.pipeline import fit_regmix_predictor

with log_to(snakemake.log[0]):
    fit_regmix_predictor(snakemake.input.prior, list(snakemake.input.weights), list(snakemake.input.scores),
                         job_settings(snakemake.params.search, snakemake.config, "search"), snakemake.params.seed,
                         snakemake.output.model, snakemake.output.summary)
