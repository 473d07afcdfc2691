"""Stage 3: quality annotation by a teacher, fastText classifiers, and per-document quality scores."""
