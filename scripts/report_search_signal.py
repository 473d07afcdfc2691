from climb.core.log import log_to
from climb.report.pages import search_signal_page

with log_to(snakemake.log[0]):
    search_signal_page(list(snakemake.input.summaries), snakemake.input.final, snakemake.output[0])
