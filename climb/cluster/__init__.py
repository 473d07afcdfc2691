"""Stage 2: document embeddings and k-means (fit on sample shards, assign every shard)."""
