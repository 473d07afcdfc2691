from climb.core.log import log_to
from climb.filter.heldout import carve_shard

with log_to(snakemake.log[0]):
    carve = snakemake.params.carve
    carve_shard(snakemake.input[0], carve["column"], carve["values"], carve["fraction"], snakemake.params.topic,
                snakemake.params.seed, snakemake.output.ids, snakemake.output.docs)
