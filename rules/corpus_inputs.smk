# Input functions and params of the rules in rules/corpus.smk.


def get_shard_paths(wildcards):
    """The input files of one corpus shard (a batch of input.shards_per_job input shards, sorted)."""
    members = corpus_shards(config["input"]["shards_per_job"])[wildcards.shard]
    return [INPUT_SHARDS[name] for name in members]
