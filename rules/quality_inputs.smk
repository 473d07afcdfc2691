# Input functions and params of the rules in rules/quality.smk.


def get_fit_corpus(wildcards):
    """The corpus of the fit shards: the teacher's sample is drawn from them, so an added shard changes nothing."""
    return expand("results/corpus/{shard}.parquet", shard=get_fit_shards())


def get_quality_models():
    """One fastText classifier per configured quality criterion."""
    return expand("results/quality/fasttext/{criterion}.bin", criterion=config["quality"]["criteria"])


def get_quality_classifier_inputs(wildcards):
    """The teacher's annotations to train on, or the configured pretrained models."""
    classifier = config["quality"]["classifier"]
    if classifier["source"] == "pretrained":
        return {"pretrained": [classifier["pretrained"][c] for c in config["quality"]["criteria"] if c in classifier["pretrained"]]}
    return {"annotations": "results/quality/annotations.parquet"}


def get_teacher_params():
    """The teacher's result keys; the openai endpoint's only when that teacher is used (else they rerun nothing)."""
    if config["quality"]["teacher"]["kind"] != "openai":
        return {"kind": config["quality"]["teacher"]["kind"]}
    return {**get_result_settings("quality.teacher"), "openai": get_result_settings("quality.teacher.openai")}


def get_classifier_params():
    """Classifier settings; the pretrained models' paths only when they are used."""
    unused = ("pretrained",) if config["quality"]["classifier"]["source"] == "train" else ()
    return get_result_settings("quality.classifier", exclude=unused)


TEXT_NORMALIZATION = ("lowercase", "newline_token", "split_punctuation")


def get_text_normalization_params():
    """What scoring a document needs besides the models: the text normalization they were trained with."""
    return {k: config["quality"]["classifier"][k] for k in TEXT_NORMALIZATION}
