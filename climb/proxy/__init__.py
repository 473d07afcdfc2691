"""Stage 7 (lower level): proxy models trained on a mixture, and their lm-eval scoring on a target."""
