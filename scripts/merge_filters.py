from climb.filters import merge_filter_lists
from climb.log import log_to

with log_to(snakemake.log[0]):
    merge_filter_lists(list(snakemake.input), snakemake.output[0])
