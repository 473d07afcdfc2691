from climb.core.log import log_to
from climb.corpus.embedded_corpus import write_embedded_corpus

with log_to(snakemake.log[0]):
    s = snakemake.params.settings
    write_embedded_corpus(
        shard_paths=list(snakemake.output.shards),
        heldout_path=snakemake.output.heldout,
        manifest_path=snakemake.output.manifest,
        docs_per_topic=s["docs_per_topic"],
        heldout_per_topic=s["heldout_per_topic"],
        planted_per_kind=s["planted_per_kind"],
        min_chars=s["min_chars"],
        max_chars=s["max_chars"],
        seed=snakemake.params.seed,
        processes=snakemake.threads,
    )
