from climb.core.log import log_to
from climb.filter.document_quality import cluster_score_distribution
from climb.report.pages import plot_score_distribution

ROWS_PER_SHARD = 20_000  # documents read per shard: the report's sample of a large corpus

with log_to(snakemake.log[0]):
    p = snakemake.params
    distribution = cluster_score_distribution(list(snakemake.input.assign), list(snakemake.input.scores),
                                              p.criteria, p.document_thresholds, ROWS_PER_SHARD)
    plot_score_distribution(distribution, p.thresholds, p.document_thresholds, snakemake.output.png,
                            snakemake.output.table)
