from climb.core.config import job_settings, runtime_settings
from climb.core.log import log_to
from climb.quality.annotate import annotate

with log_to(snakemake.log[0]):
    teacher = dict(snakemake.params.teacher)
    if "openai" in teacher:  # the endpoint's runtime keys (concurrency, timeouts, retries) come from the job's config
        teacher["openai"] = job_settings(teacher["openai"], snakemake.config, "quality.teacher.openai")
    cache = runtime_settings(snakemake.config, "quality.teacher")["cache"]
    annotate(list(snakemake.input), snakemake.output[0], snakemake.params.criteria, teacher,
             snakemake.params.sample_size, snakemake.params.seed, cache_path=cache)
