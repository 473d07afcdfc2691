from climb.log import log_to
from climb.quality.annotate import annotate

with log_to(snakemake.log[0]):
    annotate(list(snakemake.input), snakemake.output[0], snakemake.params.criteria, snakemake.params.teacher,
             snakemake.params.sample_size, snakemake.params.seed, cache_path=snakemake.params.cache)
