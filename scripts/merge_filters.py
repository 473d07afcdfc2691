from climb.core.log import log_to
from climb.filter.accounting import merge_filter_lists

with log_to(snakemake.log[0]):
    merge_filter_lists(list(snakemake.input), snakemake.output[0])
