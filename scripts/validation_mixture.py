from climb.core.log import log_to
from climb.validation.target_models import mixture_to_validate

with log_to(snakemake.log[0]):
    mixture_to_validate(snakemake.input[0], snakemake.output[0])
