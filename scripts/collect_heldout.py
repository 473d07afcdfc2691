from climb.core.log import log_to
from climb.filter.heldout import collect_carved

with log_to(snakemake.log[0]):
    collect_carved(list(snakemake.input), snakemake.output[0])
