from climb.log import log_to
from climb.quality.document_filter import filter_documents

with log_to(snakemake.log[0]):
    filter_documents(snakemake.input[0], snakemake.params.thresholds, snakemake.output[0])
