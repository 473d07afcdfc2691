from climb.log import log_to
from climb.report import search_signal_page

with log_to(snakemake.log[0]):
    search_signal_page(list(snakemake.input.summaries), snakemake.input.final, snakemake.output[0])
