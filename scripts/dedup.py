from climb.config import runtime_settings
from climb.dedup import dedup_group
from climb.log import log_to

with log_to(snakemake.log[0]):
    runtime = runtime_settings(snakemake.config, "dedup")
    dedup_group(snakemake.params.assign, snakemake.params.embed, int(snakemake.wildcards.group),
                snakemake.params.n_groups, snakemake.params.threshold, snakemake.output.filter,
                snakemake.output.counts, block=runtime["block_rows"], device=runtime["device"])
