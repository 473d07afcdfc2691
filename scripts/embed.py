from climb.cluster.embeddings import embed_shard
from climb.core.config import job_settings
from climb.core.log import log_to

with log_to(snakemake.log[0]):
    s = job_settings(snakemake.params.settings, snakemake.config, "embed")
    embed_shard(
        snakemake.input[0],
        snakemake.output[0],
        model=s["model"],
        device=s["device"],
        max_seq_length=s["max_seq_length"],
        batch_size=s["batch_size"],
        chunk_rows=s["chunk_rows"],
        trust_remote_code=s["trust_remote_code"],
        threads=snakemake.threads,
        config_kwargs=s.get("config_kwargs"),
    )
