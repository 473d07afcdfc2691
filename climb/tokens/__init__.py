"""Stage 6: the pipeline tokenizer and the packed per-shard token files with their index."""
