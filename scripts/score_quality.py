from climb.core.config import runtime_settings
from climb.core.log import log_to
from climb.quality.score import score_shard

with log_to(snakemake.log[0]):
    criteria = snakemake.params.criteria
    score_shard(snakemake.input.corpus, dict(zip(criteria, snakemake.input.models, strict=True)), snakemake.output[0],
                criteria, snakemake.params.settings, runtime_settings(snakemake.config, "quality")["batch_rows"])
