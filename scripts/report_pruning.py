from climb.core.log import log_to
from climb.report.pages import plot_pruning

with log_to(snakemake.log[0]):
    plot_pruning(snakemake.input.stats, dict(snakemake.params.thresholds), snakemake.output.png, snakemake.output.table)
