from climb.config import config_hash
from climb.export import write_climbmix
from climb.log import log_to

with log_to(snakemake.log[0]):
    write_climbmix(list(snakemake.input.select), snakemake.input.plan, snakemake.input.mixture,
                   list(snakemake.output.parts), snakemake.output.manifest, config_hash=config_hash(snakemake.config))
