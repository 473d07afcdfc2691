# Input functions and params of the rules in rules/tokens.smk.


def get_tokenizer_inputs(wildcards):
    """The configured tokenizer folder, or the fit shards' corpus to train the BPE on (so a new shard changes nothing)."""
    if config["tokenizer"]["path"]:
        return [config["tokenizer"]["path"]]
    return get_fit_corpus(wildcards)
