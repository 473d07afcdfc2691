from climb.core.config import job_settings
from climb.core.log import log_to
from climb.proxy.train import train_proxy

with log_to(snakemake.log[0]):
    train_proxy(
        snakemake.input.weights,
        list(snakemake.params.bins),
        list(snakemake.params.index),
        snakemake.input.superclusters,
        list(snakemake.input.filters),
        snakemake.input.tokenizer,
        snakemake.output.proxy,
        snakemake.output.training,
        job_settings(snakemake.params.settings, snakemake.config, "proxy"),
        seed=snakemake.params.seed,
        threads=snakemake.threads,
    )
