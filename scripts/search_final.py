from climb.core.config import job_settings
from climb.core.log import log_to
from climb.search.pipeline import write_final_mixture

with log_to(snakemake.log[0]):
    write_final_mixture(snakemake.wildcards.strategy, snakemake.wildcards.target, snakemake.input.prior,
                        job_settings(snakemake.params.search, snakemake.config, "search"), snakemake.params.seed,
                        snakemake.output[0], model_path=snakemake.input.get("model"),
                        weights_paths=list(snakemake.input.get("weights", [])),
                        score_paths=list(snakemake.input.get("scores", [])),
                        summary_path=snakemake.input.get("summary"))
