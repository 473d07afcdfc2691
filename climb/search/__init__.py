"""CLIMB's bi-level mixture search: Dirichlet pool, LightGBM predictor, round proposals, final mixtures.

``climb.search.core.run_search`` runs any strategy against any evaluator; ``climb.search.pipeline`` holds the
file-level steps the Snakemake rules call; ``python -m climb.search.bench`` is the simulator benchmark.
"""
