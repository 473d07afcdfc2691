from climb.core.log import log_to
from climb.filter.document_quality import filter_documents

with log_to(snakemake.log[0]):
    filter_documents(snakemake.input[0], snakemake.params.thresholds, snakemake.output[0])
