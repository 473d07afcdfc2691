from climb.core.log import log_to
from climb.report.pages import search_report

with log_to(snakemake.log[0]):
    search_report(list(snakemake.params.rounds), list(snakemake.input.weights), list(snakemake.input.scores),
                  snakemake.input.superclusters, snakemake.input.final, snakemake.output.mixtures,
                  snakemake.output.predicted, snakemake.output.objective, model_path=snakemake.input.model)
