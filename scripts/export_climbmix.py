from climb.core.config import config_hash
from climb.core.log import log_to
from climb.export.climbmix import write_climbmix

with log_to(snakemake.log[0]):
    write_climbmix(list(snakemake.input.select), snakemake.input.plan, snakemake.input.mixture,
                   list(snakemake.output.parts), snakemake.output.manifest, config_hash=config_hash(snakemake.config))
