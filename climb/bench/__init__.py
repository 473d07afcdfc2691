"""The benchmark suite: ``make bench`` or ``python -m climb.bench``; see climb/bench/runner.py."""
