# Input functions and params of the rules in rules/corpus.smk.


def get_shard_path(wildcards):
    return SHARDS[wildcards.shard]
