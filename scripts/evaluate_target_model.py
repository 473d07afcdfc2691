from climb.config import job_settings
from climb.evaluate import evaluate_proxy
from climb.log import log_to

with log_to(snakemake.log[0]):
    config = {"evaluation": job_settings(snakemake.params.evaluation, snakemake.config, "evaluation"),
              "targets": {"validation": {"tasks": list(snakemake.params.tasks)}}}
    evaluate_proxy(snakemake.input.model, "validation", config, snakemake.output[0], seed=snakemake.params.seed,
                   threads=snakemake.threads)
