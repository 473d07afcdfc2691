"""Validation, the paper's Table 1 protocol: target models trained on each strategy's mixture, and the table."""
