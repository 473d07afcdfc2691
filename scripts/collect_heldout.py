from climb.heldout import collect_carved
from climb.log import log_to

with log_to(snakemake.log[0]):
    collect_carved(list(snakemake.input), snakemake.output[0])
