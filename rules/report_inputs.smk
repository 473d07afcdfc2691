# Input functions and params of the rules in rules/report.smk.


def get_report_outputs():
    """Plots and tables of the HTML report (`snakemake --report report.html`)."""
    return [
        "results/report/cluster_sizes.png",
        "results/report/centroid_map.png",
        "results/report/pruning.png",
        "results/report/pruning.html",
        "results/report/quality_scores.png",
        "results/report/quality_scores.html",
        "results/report/superclusters.png",
        "results/report/superclusters.html",
        "results/report/final_vs_prior.png",
        *(get_report_search_outputs() if config["export"]["mixture"] == "search" else []),
    ]


def get_report_search_outputs():
    """The search plots of the exported target and strategy."""
    return ["results/report/search_mixtures.png", "results/report/search_predicted.png",
            "results/report/search_objective.png", "results/report/search_signal.html"]


def get_report_search_summaries():
    """Every round's predictor summary (signal, skill) of the exported target."""
    target = get_export_target()
    return [f"results/search/{target}/round{r}/predictor.json" for r in range(1, len(config["search"]["rounds"]) + 1)]


def get_report_search_inputs(wildcards):
    """Weights and scores of every mixture evaluated for the exported target (rounds 1..n), and its final mixture."""
    target = get_export_target()
    last = len(config["search"]["rounds"])
    dirs = [d for r in range(1, last + 1) for d in _search_round_dirs(target, r)]
    return {**_search_history(target, dirs), "final": get_export_mixture(),
            "model": f"results/search/{target}/round{last}/predictor.txt"}


def get_report_search_rounds():
    """The round of each mixture get_report_search_inputs lists."""
    return [r for r, n in enumerate(config["search"]["rounds"], start=1) for _ in range(n)]
