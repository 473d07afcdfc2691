"""Stages 4-5: per-cluster quality sums, cluster pruning, Ward merge into super-clusters; the one reader of superclusters.json."""
