# Quality: the teacher annotates a sample, fastText and LightGBM classifiers learn it and score every document.


include: "quality_inputs.smk"


rule annotate_quality:
    input:
        get_fit_corpus,
    output:
        "results/quality/annotations.parquet",
    params:
        criteria=config["quality"]["criteria"],
        teacher=get_teacher_params(),
        sample_size=config["quality"]["sample_size"],
        seed=config["seed"],
    resources:
        **job_resources("annotate_quality", 0),
    log:
        "results/logs/quality/annotate.log",
    benchmark:
        "results/benchmarks/quality/annotate.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/annotate_quality.py"


rule quality_classifiers:
    input:
        unpack(get_quality_classifier_inputs),
    output:
        models=get_quality_models(),
        metrics="results/quality/metrics.json",
    params:
        criteria=config["quality"]["criteria"],
        settings=get_classifier_params(),
        seed=config["seed"],
    resources:
        **job_resources("quality_classifiers", 0),
    log:
        "results/logs/quality/classifiers.log",
    benchmark:
        "results/benchmarks/quality/classifiers.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/quality_classifiers.py"


rule score_quality:
    input:
        corpus="results/corpus/{shard}.parquet",
        models=get_quality_models(),
    output:
        "results/quality/scores/{shard}.parquet",
    params:
        criteria=config["quality"]["criteria"],
        settings=get_text_normalization_params(),
    resources:
        **shard_resources("score_quality"),
    log:
        "results/logs/quality/score/{shard}.log",
    benchmark:
        "results/benchmarks/quality/score/{shard}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/score_quality.py"
