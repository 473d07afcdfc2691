from climb.core.config import job_settings
from climb.core.log import log_to
from climb.proxy.evaluate import evaluate_proxy

with log_to(snakemake.log[0]):
    target = snakemake.wildcards.target
    config = {"evaluation": job_settings(snakemake.params.evaluation, snakemake.config, "evaluation"),
              "targets": {target: {"tasks": list(snakemake.params.tasks)}}}
    evaluate_proxy(snakemake.input.proxy, target, config, snakemake.output[0], seed=snakemake.params.seed,
                   threads=snakemake.threads)
