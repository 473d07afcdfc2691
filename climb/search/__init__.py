"""Stage 7 (upper level): CLIMB's bi-level mixture search: Dirichlet pool, predictor, round proposals, the noise
floor and verdict, final mixtures, and the RegMix and DoReMi baselines.

``climb.search.core.run_search`` runs any strategy against any evaluator; ``climb.search.pipeline`` holds the
file-level steps the Snakemake rules call.
"""
