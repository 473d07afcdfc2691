from climb.core.log import log_to
from climb.report.pages import plot_centroid_map, plot_cluster_sizes

with log_to(snakemake.log[0]):
    plot_cluster_sizes(snakemake.input.stats, snakemake.output.sizes)
    plot_centroid_map(snakemake.input.centroids, snakemake.input.stats, snakemake.output.map)
