from climb.cluster.kmeans import assign_shard
from climb.core.log import log_to

with log_to(snakemake.log[0]):
    assign_shard(snakemake.input.corpus, snakemake.input.embeddings, snakemake.input.centroids, snakemake.output[0])
