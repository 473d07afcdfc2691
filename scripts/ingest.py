from climb.core.config import job_settings
from climb.core.log import log_to
from climb.corpus.ingest import ingest_shard

with log_to(snakemake.log[0]):
    settings = job_settings(snakemake.params.settings, snakemake.config, "ingest")
    ingest_shard(
        list(snakemake.input),
        snakemake.output.corpus,
        snakemake.output.rejects,
        snakemake.output.counts,
        shard=snakemake.wildcards.shard,
        text_field=snakemake.params.text_field,
        id_field=snakemake.params.id_field,
        origin_field=snakemake.params.origin_field,
        max_chars=settings["max_chars"],
        on_too_long=settings["on_too_long"],
        drop_exact_duplicates=settings["drop_exact_duplicates"],
        batch_rows=settings["batch_rows"],
    )
