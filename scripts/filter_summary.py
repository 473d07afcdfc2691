from climb.filters import summarize_filters
from climb.log import log_to

with log_to(snakemake.log[0]):
    summarize_filters(snakemake.input.counts, snakemake.input.corpus,
                      {"dedup": snakemake.input.dedup, "decontam": snakemake.input.decontam,
                       "heldout": snakemake.input.heldout, "quality": snakemake.input.quality}, snakemake.output[0],
                      dedup_counts=snakemake.input.dedup_counts)
