# What every stage shares: the input shards, result settings as params, GPU placement, the targets of `rule all`.
# Each stage's own input functions (get_*) sit at the top of its rules file.

import functools
import re

from snakemake.exceptions import WorkflowError

from climb.compute.placement import gpus_for, job_resources, per_shard_resources
from climb.core.config import SEARCH_STRATEGIES, STRATEGIES, result_settings
from climb.corpus.shards import batch_shards, embedded_shards, resolve_shards, select_fit_shards

EMBEDDED_DIR = "results/embedded"
# Priority of the search loop's rules (pool, replicates, proxies, scores, round predictor and proposals): each round
# waits for the last proxy of the one before, so whenever a core frees its ready jobs go before side work (the
# baselines' final mixtures, reports). Snakemake's default priority is 0.
SEARCH_LOOP_PRIORITY = 1
# Priority of the report rules (plots and tables): no job waits for them, so a core goes to them only when no other
# job is ready. At the default they took both cores just before the first proxy, ahead of the dedup jobs it waits for.
REPORT_PRIORITY = -1
# Priority of the k-means fit and the tokenizer's training: the first proxy waits for both, and each takes 2 threads,
# so on a 2-core run it starts only when no 1-thread job holds a core. At the default the quality classifiers and
# score jobs kept one busy, and the fit started 7 s after its embeddings were done.
SEARCH_INPUT_PRIORITY = 1


def get_spread_threads(n_jobs):
    """Threads of each of a rule's ``n_jobs`` jobs that can run at once on a local run: the run's cores spread over
    them, 1 to 8; 1 without --cores (a DAG listing, or an executor: the SLURM profile sets its own, set-threads)."""
    try:
        cores = workflow.cores
    except WorkflowError:
        cores = 1
    return max(1, min(8, cores // n_jobs))


def get_result_settings(section, exclude=()):
    """A rule's params from one config section: its result keys (x-effect: result in the schema), one by one.
    Runtime keys (batch sizes, threads, devices, ...) are not params: a job reads them from its own config
    (climb.core.config.runtime_settings), so changing one reruns nothing."""
    return result_settings(config, section, exclude)


def get_input_shards():
    """{input shard name: path}; the embedded default corpus when `input.shards` is empty."""
    if config["input"]["shards"]:
        return resolve_shards(config["input"]["shards"])
    return embedded_shards(config["input"]["embedded"]["n_shards"], EMBEDDED_DIR)


INPUT_SHARDS = get_input_shards()


@functools.cache
def corpus_shards(shards_per_job):
    """{corpus shard name: its input shard names}: the input shards in batches of about `shards_per_job`."""
    return batch_shards(list(INPUT_SHARDS), shards_per_job)


# The corpus shards every per-shard rule runs on ({shard}).
SHARDS = corpus_shards(config["input"]["shards_per_job"])


wildcard_constraints:
    shard="|".join(re.escape(name) for name in SHARDS),


def shard_resources(rule, gpus=0):
    """`resources:` of a per-shard rule: its runtime scales with the input shards in the job's corpus shard."""
    return per_shard_resources(rule, gpus, lambda wildcards: len(SHARDS[wildcards.shard]))


def get_fit_shards():
    return select_fit_shards(SHARDS, config["cluster"]["fit_shards"])


def get_all(pattern):
    """`pattern` expanded over every input shard."""
    return expand(pattern, shard=list(SHARDS))


def carving():
    """Whether held-out target documents are carved from the corpus (evaluation.heldout.carve.values)."""
    return bool(config["evaluation"]["heldout"]["carve"]["values"])


LOCAL_EVAL_DATA = {
    "climb_heldout_bpb": "results/eval/heldout_bpb.jsonl",
    "climb_heldout_mc": "results/eval/heldout_mc.jsonl",
    "climb_validation_bpb": "results/eval/validation_bpb.jsonl",
    "climb_validation_mc": "results/eval/validation_mc.jsonl",
}


def get_final_outputs():
    """Everything `rule all` builds, stage by stage."""
    return [
        "results/corpus/summary.json",
        "results/kmeans/centroids.npy",
        *get_all("results/kmeans/assign/{shard}.parquet"),
        "results/filter/summary.json",
        *get_all("results/tokens/{shard}.idx.parquet"),
        "results/tokens/prior.json",
        "results/quality/metrics.json",
        "results/clusters/stats.parquet",
        "results/clusters/superclusters.json",
        *get_search_finals(),
        *get_export_outputs(),
        *get_report_outputs(),
        *(get_validation_outputs() if config["validation"]["in_all"] else []),
    ]
