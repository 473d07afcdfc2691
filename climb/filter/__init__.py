"""Filters after ingest: semantic dedup, decontamination, the document quality filter, the carved held-out set, and their accounting (input rows = kept + filtered + rejected)."""
