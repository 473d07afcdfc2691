from climb.core.config import job_settings
from climb.core.log import log_to
from climb.search.pipeline import propose

with log_to(snakemake.log[0]):
    # search.signal is read from the job's config: whether round 1's signal stops the search never changes proposals
    propose(snakemake.input.prior, snakemake.input.model, list(snakemake.input.weights), list(snakemake.input.scores),
            job_settings(snakemake.params.search, snakemake.config, "search"), snakemake.params.seed,
            int(snakemake.wildcards.r), snakemake.output[0], summary_path=snakemake.input.summary,
            signal=snakemake.config["search"]["signal"], target=snakemake.wildcards.target)
