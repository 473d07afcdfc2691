from climb.core.log import log_to
from climb.filter.accounting import write_file_manifest

with log_to(snakemake.log[0]):
    write_file_manifest(list(snakemake.input), snakemake.output[0])
