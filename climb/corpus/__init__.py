"""Stage 1: the input corpus: shard discovery, ingest to Parquet, the embedded default corpus."""
