from climb.evaluate import evaluate_proxy
from climb.log import log_to

with log_to(snakemake.log[0]):
    evaluate_proxy(snakemake.input.model, "validation", snakemake.params.config, snakemake.output[0],
                   seed=snakemake.params.seed, threads=snakemake.threads)
