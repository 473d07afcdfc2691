from climb.evaluate import build_heldout_tasks
from climb.log import log_to

with log_to(snakemake.log[0]):
    build_heldout_tasks(snakemake.input[0], snakemake.output.bpb, snakemake.output.mc, snakemake.params.settings,
                        snakemake.params.seed, snakemake.output.validation_bpb, snakemake.output.validation_mc)
