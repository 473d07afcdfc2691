from climb.cluster.kmeans import fit_kmeans
from climb.core.config import job_settings
from climb.core.log import log_to

with log_to(snakemake.log[0]):
    s = job_settings(snakemake.params.settings, snakemake.config, "cluster")
    fit_kmeans(
        list(snakemake.input),
        snakemake.output.centroids,
        snakemake.output.report,
        k=s["k"],
        sample_size=s["sample_size"],
        niter=s["niter"],
        nredo=s["nredo"],
        seed=snakemake.params.seed,
        gpu=s["gpu"],
        init=s["init"],
        init_max_points=s["init_max_points"],
        threads=snakemake.threads,
    )
