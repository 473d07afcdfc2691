"""The benchmark suite (issue 9): ``make bench`` or ``python -m climb.bench``; see climb/bench/runner.py."""
