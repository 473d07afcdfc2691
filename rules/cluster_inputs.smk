# Input functions and params of the rules in rules/cluster.smk.

def get_fit_embeddings(wildcards):
    return expand("results/embed/{shard}.npy", shard=get_fit_shards())


def get_embed_threads():
    """Threads of an embedding job on a local run: on 2 cores, two 1-thread jobs embed ~20% more documents a second
    than one 2-thread job."""
    return get_spread_threads(len(SHARDS))

