from climb.core.log import log_to
from climb.proxy.evaluate import build_heldout_tasks

with log_to(snakemake.log[0]):
    build_heldout_tasks(snakemake.input[0], snakemake.output.bpb, snakemake.output.mc, snakemake.params.settings,
                        snakemake.params.seed, snakemake.output.validation_bpb, snakemake.output.validation_mc)
