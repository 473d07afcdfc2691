from climb.config import runtime_settings
from climb.log import log_to
from climb.proxy import train_proxy

with log_to(snakemake.log[0]):
    # result keys come as params; runtime keys (devices, processes, checkpoints) from the job's own config
    settings = {**snakemake.params.settings, **runtime_settings(snakemake.config, "proxy")}
    train_proxy(snakemake.input.weights, list(snakemake.params.bins), list(snakemake.params.index),
                snakemake.input.superclusters, list(snakemake.input.filters), snakemake.input.tokenizer,
                snakemake.output.proxy, snakemake.output.training, settings, seed=snakemake.params.seed,
                threads=snakemake.threads, doremi={"reference": snakemake.input.reference, **snakemake.params.doremi})
