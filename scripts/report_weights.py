from climb.core.log import log_to
from climb.report.pages import plot_weights_vs_prior

with log_to(snakemake.log[0]):
    plot_weights_vs_prior(snakemake.input.mixture, snakemake.input.prior, snakemake.input.superclusters,
                          snakemake.output[0])
