from climb.core.log import log_to
from climb.superclusters.merge import prune_and_merge

with log_to(snakemake.log[0]):
    prune_and_merge(list(snakemake.input.sums), snakemake.input.centroids, snakemake.output.stats,
                    snakemake.output.superclusters, snakemake.params.criteria, snakemake.params.prune,
                    snakemake.params.merge)
