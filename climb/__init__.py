"""climb: CLIMB (clustering-based iterative data mixture bootstrapping) as a Snakemake workflow."""

__version__ = "0.1.0"
