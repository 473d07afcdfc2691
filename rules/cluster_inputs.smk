# Input functions and params of the rules in rules/cluster.smk.


def get_fit_embeddings(wildcards):
    return expand("results/embed/{shard}.npy", shard=get_fit_shards())
