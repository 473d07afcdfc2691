from climb.ingest import summarize_corpus
from climb.log import log_to

with log_to(snakemake.log[0]):
    summarize_corpus(list(snakemake.input.counts), list(snakemake.input.corpus), snakemake.output[0])
