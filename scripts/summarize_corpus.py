from climb.core.log import log_to
from climb.corpus.ingest import summarize_corpus

with log_to(snakemake.log[0]):
    summarize_corpus(list(snakemake.input.counts), list(snakemake.input.corpus), snakemake.output[0])
