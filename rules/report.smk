# Plots and tables for Snakemake's HTML report: `snakemake --report report.html` after a run.


include: "report_inputs.smk"


report: "report/workflow.rst"


rule report_clusters:
    input:
        stats="results/clusters/stats.parquet",
        centroids="results/kmeans/centroids.npy",
    output:
        sizes=report("results/report/cluster_sizes.png", caption="report/cluster_sizes.rst", category="1. Clusters"),
        map=report("results/report/centroid_map.png", caption="report/centroid_map.rst", category="1. Clusters"),
    priority: REPORT_PRIORITY
    log:
        "results/logs/report/clusters.log",
    benchmark:
        "results/benchmarks/report/clusters.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/report_clusters.py"


rule report_pruning:
    input:
        stats="results/clusters/stats.parquet",
    output:
        png=report("results/report/pruning.png", caption="report/pruning.rst", category="2. Pruning"),
        table=report("results/report/pruning.html", caption="report/pruning_table.rst", category="2. Pruning"),
    params:
        thresholds=config["prune"]["thresholds"],
    priority: REPORT_PRIORITY
    log:
        "results/logs/report/pruning.log",
    benchmark:
        "results/benchmarks/report/pruning.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/report_pruning.py"


rule report_quality_scores:
    input:
        assign=get_all("results/kmeans/assign/{shard}.parquet"),
        scores=get_all("results/quality/scores/{shard}.parquet"),
    output:
        png=report("results/report/quality_scores.png", caption="report/quality_scores.rst", category="2. Pruning"),
        table=report("results/report/quality_scores.html", caption="report/quality_scores_table.rst",
                     category="2. Pruning"),
    params:
        criteria=config["quality"]["criteria"],
        thresholds=config["prune"]["thresholds"],
        document_thresholds=config["prune"]["document_thresholds"],
    priority: REPORT_PRIORITY
    log:
        "results/logs/report/quality_scores.log",
    benchmark:
        "results/benchmarks/report/quality_scores.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/report_quality_scores.py"


rule report_superclusters:
    input:
        corpus=get_all("results/corpus/{shard}.parquet"),
        index=get_all("results/tokens/{shard}.idx.parquet"),
        superclusters="results/clusters/superclusters.json",
        filters=get_filter_lists(),
    output:
        png=report("results/report/superclusters.png", caption="report/superclusters.rst",
                   category="3. Super-clusters"),
        table=report("results/report/superclusters.html", caption="report/superclusters_table.rst",
                     category="3. Super-clusters"),
    params:
        settings=get_result_settings("report"),
        seed=config["seed"],
    priority: REPORT_PRIORITY
    log:
        "results/logs/report/superclusters.log",
    benchmark:
        "results/benchmarks/report/superclusters.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/report_superclusters.py"


rule report_weights:
    input:
        mixture=get_export_mixture(),
        prior="results/tokens/prior.json",
        superclusters="results/clusters/superclusters.json",
    output:
        report("results/report/final_vs_prior.png", caption="report/final_vs_prior.rst", category="5. Final mixture"),
    priority: REPORT_PRIORITY
    log:
        "results/logs/report/weights.log",
    benchmark:
        "results/benchmarks/report/weights.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/report_weights.py"


rule report_search:
    input:
        unpack(get_report_search_inputs),
        superclusters="results/clusters/superclusters.json",
    output:
        mixtures=report("results/report/search_mixtures.png", caption="report/search_mixtures.rst",
                        category="4. Mixture search"),
        predicted=report("results/report/search_predicted.png", caption="report/search_predicted.rst",
                         category="4. Mixture search"),
        objective=report("results/report/search_objective.png", caption="report/search_objective.rst",
                         category="4. Mixture search"),
    params:
        rounds=get_report_search_rounds(),
    priority: REPORT_PRIORITY
    log:
        "results/logs/report/search.log",
    benchmark:
        "results/benchmarks/report/search.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/report_search.py"


rule report_search_signal:
    input:
        summaries=get_report_search_summaries(),
        final=get_export_mixture(),
    output:
        report("results/report/search_signal.html", caption="report/search_signal.rst", category="4. Mixture search"),
    priority: REPORT_PRIORITY
    log:
        "results/logs/report/search_signal.log",
    benchmark:
        "results/benchmarks/report/search_signal.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/report_search_signal.py"
