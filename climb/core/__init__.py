"""What every stage shares: the config and its schema, atomic file writes, logging, Snakemake compatibility."""
