from climb.core.log import log_to
from climb.filter.accounting import summarize_filters

with log_to(snakemake.log[0]):
    filters = {"dedup": snakemake.input.dedup, "decontam": snakemake.input.decontam}
    for optional in ("heldout", "quality"):  # counted only where configured (carving, document thresholds)
        if getattr(snakemake.input, optional):
            filters[optional] = getattr(snakemake.input, optional)
    summarize_filters(snakemake.input.counts, snakemake.input.corpus, filters, snakemake.output[0],
                      dedup_counts=snakemake.input.dedup_counts)
