from climb.core.config import runtime_settings
from climb.core.log import log_to
from climb.filter.dedup import dedup_group

with log_to(snakemake.log[0]):
    runtime = runtime_settings(snakemake.config, "dedup")
    dedup_group(snakemake.params.assign, snakemake.params.embed, int(snakemake.wildcards.group),
                snakemake.params.n_groups, snakemake.params.threshold, snakemake.output.filter,
                snakemake.output.counts, block=runtime["block_rows"], device=runtime["device"])
