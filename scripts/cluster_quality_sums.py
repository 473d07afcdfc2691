from climb.core.log import log_to
from climb.superclusters.prune import write_shard_cluster_sums

with log_to(snakemake.log[0]):
    write_shard_cluster_sums(snakemake.input.assign, snakemake.input.scores, snakemake.input.corpus,
                             snakemake.input.centroids, snakemake.output[0], snakemake.params.criteria)
