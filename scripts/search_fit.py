from climb.core.config import job_settings
from climb.core.log import log_to
from climb.search.pipeline import fit_round_predictor

with log_to(snakemake.log[0]):
    fit_round_predictor(snakemake.input.prior, list(snakemake.input.weights), list(snakemake.input.scores),
                        job_settings(snakemake.params.search, snakemake.config, "search"), snakemake.params.seed,
                        int(snakemake.wildcards.r), snakemake.output.model, snakemake.output.summary,
                        replicate_paths=list(snakemake.input.replicates),
                        contrast_paths=list(snakemake.input.contrasts))
