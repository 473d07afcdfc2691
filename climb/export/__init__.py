"""Stage 8: ClimbMix and ClimbLab Parquet parts and the blends a trainer reads."""
