from climb.core.log import log_to
from climb.report.pages import supercluster_contents

with log_to(snakemake.log[0]):
    supercluster_contents(list(snakemake.input.corpus), list(snakemake.input.index), snakemake.input.superclusters,
                          list(snakemake.input.filters), snakemake.output.png, snakemake.output.table,
                          seed=snakemake.params.seed, **snakemake.params.settings)
