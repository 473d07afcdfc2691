# Input functions and params of the rules in rules/cluster.smk.

from snakemake.exceptions import WorkflowError


def get_fit_embeddings(wildcards):
    return expand("results/embed/{shard}.npy", shard=get_fit_shards())


def get_embed_threads():
    """Threads of an embedding job: the run's cores spread over its shards, 1 to 8. With more shards than cores,
    one thread each: on 2 cores, two 1-thread jobs embed ~20% more documents a second than one 2-thread job.
    The SLURM profile sets its own (set-threads)."""
    try:
        cores = workflow.cores
    except WorkflowError:  # no --cores: a DAG listing, or an executor whose profile sets the threads
        cores = 1
    return max(1, min(8, cores // len(SHARDS)))

