from climb.filters import write_file_manifest
from climb.log import log_to

with log_to(snakemake.log[0]):
    write_file_manifest(list(snakemake.input), snakemake.output[0])
