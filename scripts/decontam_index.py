from climb.core.log import log_to
from climb.filter.decontam import build_index_file

with log_to(snakemake.log[0]):
    build_index_file(snakemake.params.tasks, snakemake.output.index, snakemake.output.stats, snakemake.params.ngram,
                     config={"evaluation": snakemake.params.evaluation})
