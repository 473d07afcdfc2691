"""Scoring proxies with lm-eval (climb.proxy.evaluate): objectives, local JSON tasks, and a real-signal direction test."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from climb.proxy.evaluate import (
    EvaluationError,
    build_heldout_tasks,
    evaluate_proxy,
    load_tasks,
    objective,
    task_manager,
)
from climb.proxy.train import train_proxy
from tests.conftest import shared_data
from tests.test_proxy import SETTINGS, weights_file
from tests.test_tokenize import make_world

HELDOUT = {"topic": "hockey", "max_docs": 25, "max_chars": 1200, "mc_items": 30, "mc_choices": 4,
           "context_chars": 300, "continuation_chars": 120}


def eval_config(tmp: Path, **data_files) -> dict:
    return {
        "evaluation": {"include_paths": [], "data_files": {k: str(v) for k, v in data_files.items()}, "batch_size": 16,
                       "limit": None, "bootstrap_iters": 0, "device": "cpu", "dtype": "auto", "heldout": HELDOUT},
        "targets": {
            "general": {"tasks": [
                {"task": "climb_heldout_bpb", "metric": "bits_per_byte", "weight": 1.0, "higher_is_better": False},
                {"task": "climb_heldout_mc", "metric": "acc", "weight": 1.0, "higher_is_better": True}]},
            "piqa": {"tasks": [{"task": "climb_piqa", "metric": "acc_norm", "weight": 1.0, "higher_is_better": True}]},
        },
    }


def test_objective_is_signed_weighted_mean():
    results = {"a": {"acc,none": 0.6, "acc_stderr,none": 0.1}, "b": {"bits_per_byte,none": 2.0}}
    tasks = [{"task": "a", "metric": "acc", "weight": 3.0, "higher_is_better": True},
             {"task": "b", "metric": "bits_per_byte", "weight": 1.0, "higher_is_better": False}]
    value, metrics = objective(results, tasks)
    assert value == pytest.approx((3 * 0.6 - 2.0) / 4)
    assert metrics == {"a/acc": 0.6, "b/bits_per_byte": 2.0}
    with pytest.raises(EvaluationError, match="no metric 'acc_norm,none'.*acc,none"):
        objective(results, [{"task": "a", "metric": "acc_norm", "weight": 1.0, "higher_is_better": True}])
    with pytest.raises(EvaluationError, match="no results for task 'c'"):
        objective(results, [{"task": "c", "metric": "acc", "weight": 1.0, "higher_is_better": True}])


@pytest.mark.slow
def test_unknown_task_is_named(tmp_path):
    config = eval_config(tmp_path)
    config["targets"]["general"]["tasks"][0]["task"] = "climb_no_such_task"
    with pytest.raises(EvaluationError, match="climb_no_such_task"):
        task_manager(config, ["climb_no_such_task", "climb_heldout_mc"])


def _newsgroups(label: str, split: str, n: int) -> list[str]:
    path = shared_data("20newsgroups", "20news_bydate.jsonl")
    texts = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row["label"] == label and row["split"] == split:
                body = row["text"].split("\n\n", 1)[-1].strip()  # drop the mail headers
                if len(body) > 400:
                    texts.append(body[:1500])
    random.Random(0).shuffle(texts)
    return texts[:n]


@pytest.fixture(scope="module")
def newsgroups(tmp_path_factory):
    """Real text: hockey posts in cluster/super-cluster 0, medicine posts in 1; held-out hockey posts to score."""
    root = tmp_path_factory.mktemp("news")
    docs = [(t, 0) for t in _newsgroups("rec.sport.hockey", "train", 250)]
    docs += [(t, 1) for t in _newsgroups("sci.med", "train", 250)]
    random.Random(1).shuffle(docs)
    world = make_world(root, docs, {0: [0], 1: [1]}, tokenizer_settings={
        "path": None, "vocab_size": 1024, "min_frequency": 2, "sample_docs": 500, "max_chars_per_doc": 2000})
    heldout = root / "heldout.jsonl"
    with open(heldout, "w", encoding="utf-8") as fh:
        for topic, label in (("hockey", "rec.sport.hockey"), ("med", "sci.med")):
            for i, text in enumerate(_newsgroups(label, "test", 40)):
                fh.write(json.dumps({"id": f"{topic}-{i}", "text": text, "topic": topic}) + "\n")
    build_heldout_tasks(str(heldout), str(root / "bpb.jsonl"), str(root / "mc.jsonl"), HELDOUT, seed=0)
    return world


def test_heldout_tasks_are_built_from_the_topic(newsgroups):
    bpb = [json.loads(x) for x in (newsgroups.root / "bpb.jsonl").read_text().splitlines()]
    mc = [json.loads(x) for x in (newsgroups.root / "mc.jsonl").read_text().splitlines()]
    heldout_texts = [json.loads(x)["text"] for x in (newsgroups.root / "heldout.jsonl").read_text().splitlines()]
    assert len(bpb) == 25 and all(r["id"].startswith("hockey-") for r in bpb)
    assert len(mc) == 30 and all(len(r["choices"]) == 4 and len(set(r["choices"])) == 4 for r in mc)
    sizes = [len(c.encode()) for r in mc for c in r["choices"]]
    assert min(sizes) >= 80 and max(sizes) <= 120  # similar lengths: no length bias for plain log-likelihood
    for r in mc:  # the true continuation follows its context in a held-out document
        assert any(r["context"] + r["choices"][r["label"]] in text for text in heldout_texts)
    labels = [r["label"] for r in mc]
    assert len(set(labels)) > 1  # the true continuation is not always in the same place
    with pytest.raises(EvaluationError, match="topics present: \\['hockey', 'med'\\]"):
        build_heldout_tasks(str(newsgroups.root / "heldout.jsonl"), "x", "y", {**HELDOUT, "topic": "golf"}, 0)


@pytest.mark.slow
def test_proxies_on_different_superclusters_score_in_the_expected_direction(newsgroups, tmp_path):
    config = eval_config(tmp_path, climb_heldout_bpb=newsgroups.root / "bpb.jsonl",
                         climb_heldout_mc=newsgroups.root / "mc.jsonl")
    settings = {**SETTINGS, "seq_len": 64, "batch_size": 16, "micro_batch_size": 16, "tokens": 64 * 16 * 80,
                "lr": 5e-3}
    scores = {}
    for sc in (0, 1):
        out = tmp_path / f"proxy{sc}"
        train_proxy(weights_file(tmp_path / f"w{sc}.json", {sc: 1.0}), newsgroups.bins, newsgroups.idxs,
                    newsgroups.superclusters, [], newsgroups.tokenizer, str(out), str(tmp_path / f"t{sc}.json"),
                    settings, seed=1, threads=1)
        scores[sc] = evaluate_proxy(str(out), "general", config, str(tmp_path / f"s{sc}.json"), seed=1)
        assert json.loads((tmp_path / f"s{sc}.json").read_text())["objective"] == scores[sc]["objective"]
    hockey, med = scores[0]["metrics"], scores[1]["metrics"]
    print(hockey, med)
    # Trained on hockey posts, the proxy compresses held-out hockey posts better than the medicine proxy.
    assert hockey["climb_heldout_bpb/bits_per_byte"] < med["climb_heldout_bpb/bits_per_byte"] - 0.05
    assert scores[0]["objective"] > scores[1]["objective"]
    assert scores[0]["lm_eval"]["n-samples"]["climb_heldout_mc"]["effective"] == 30


@pytest.mark.slow
def test_piqa_from_local_json(newsgroups, tmp_path):
    piqa = shared_data("eval_tasks", "piqa_validation.jsonl")
    config = eval_config(tmp_path, climb_piqa=piqa)
    config["evaluation"]["limit"] = 40
    tasks = load_tasks(config, ["climb_piqa"])
    assert len(tasks["climb_piqa"].eval_docs) == 1838
    out = tmp_path / "proxy"
    train_proxy(weights_file(tmp_path / "w.json", {0: 0.5, 1: 0.5}), newsgroups.bins, newsgroups.idxs,
                newsgroups.superclusters, [], newsgroups.tokenizer, str(out), str(tmp_path / "t.json"),
                {**SETTINGS, "seq_len": 64, "max_position_embeddings": 256}, seed=1, threads=1)
    report = evaluate_proxy(str(out), "piqa", config, str(tmp_path / "piqa.json"), seed=1)
    assert report["lm_eval"]["n-samples"]["climb_piqa"] == {"original": 1838, "effective": 40}
    assert 0.2 <= report["objective"] <= 0.8  # two choices: a tiny proxy is near chance
    assert report["metrics"]["climb_piqa/acc_norm"] == report["objective"]


@pytest.mark.slow
def test_answers_longer_than_the_window_are_a_clear_error(newsgroups, tmp_path):
    from climb.proxy.train import build_model
    from climb.tokens.tokenizer import load_tokenizer

    piqa = shared_data("eval_tasks", "piqa_validation.jsonl")
    config = eval_config(tmp_path, climb_piqa=piqa)
    build_model({**SETTINGS, "seq_len": 32}, 1024, seed=0).save_pretrained(tmp_path / "short")
    load_tokenizer(newsgroups.tokenizer).save_pretrained(tmp_path / "short")
    with pytest.raises(EvaluationError, match="task climb_piqa: an answer is .* tokens .* context .* is 32 tokens"):
        evaluate_proxy(str(tmp_path / "short"), "piqa", config, str(tmp_path / "x.json"), seed=1)
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_scoring_model_gives_lm_eval_s_scores_from_fewer_tokenizer_calls(newsgroups, tmp_path, monkeypatch):
    """ProxyScoringLM encodes a loglikelihood call's strings at once: the same results as lm-eval's own HFLM, to the
    last bit, from one tokenizer call for the multiple-choice task instead of two per request."""
    from lm_eval.models.huggingface import HFLM

    import climb.proxy.scoring_model
    from climb.proxy.evaluate import run_lm_eval, task_specs
    from climb.proxy.scoring_model import ProxyScoringLM
    from climb.proxy.train import build_model
    from climb.tokens.tokenizer import load_tokenizer

    proxy = tmp_path / "proxy"
    build_model({**SETTINGS, "seq_len": 128}, 1024, seed=0).save_pretrained(proxy)
    tokenizer = load_tokenizer(newsgroups.tokenizer)
    tokenizer.save_pretrained(proxy)
    config = eval_config(tmp_path, climb_heldout_bpb=newsgroups.root / "bpb.jsonl",
                         climb_heldout_mc=newsgroups.root / "mc.jsonl")
    calls = []
    encode = type(tokenizer)._encode_plus
    monkeypatch.setattr(type(tokenizer), "_encode_plus", lambda self, *a, **k: calls.append(1) or encode(self, *a, **k))
    found = {}
    for name, model_class in (("ours", ProxyScoringLM), ("lm-eval", HFLM)):
        monkeypatch.setattr(climb.proxy.scoring_model, "ProxyScoringLM", model_class)
        names = ["climb_heldout_bpb", "climb_heldout_mc"]
        manager = task_manager(config, names)
        tasks = manager.load(task_specs(config, manager, names))
        calls.clear()
        raw = run_lm_eval(str(proxy), tasks, "cpu", "float32", config["evaluation"], seed=1)
        found[name] = (raw["results"], len(calls))
    assert found["ours"][0] == found["lm-eval"][0]
    bpb_docs, mc_requests = HELDOUT["max_docs"], HELDOUT["mc_items"] * HELDOUT["mc_choices"]
    assert found["lm-eval"][1] == bpb_docs + 2 * mc_requests  # HFLM: each string by itself
    assert found["ours"][1] == 2, found  # one call per task


def test_scoring_model_scores_token_requests_as_hflm_does(newsgroups, tmp_path):
    """ProxyScoringLM._loglikelihood_tokens (the log-softmax over the continuations' positions only, the greedy check
    by maxima) gives HFLM's answers to the last bit: padded batches, contexts cut at the window, greedy and
    non-greedy continuations, one-token continuations answered by one forward pass, a shared key whose
    continuations differ in length."""
    import torch
    from lm_eval.models.huggingface import HFLM

    from climb.proxy.scoring_model import ProxyScoringLM
    from climb.proxy.train import build_model
    from climb.tokens.tokenizer import load_tokenizer

    proxy, vocab = tmp_path / "proxy", 1024
    model = build_model(SETTINGS, vocab, seed=0).eval()  # a 32-token window
    model.save_pretrained(proxy)
    load_tokenizer(newsgroups.tokenizer).save_pretrained(proxy)
    rng = random.Random(0)

    def greedy_tokens(context: list[int], n: int) -> list[int]:
        ids = list(context)
        with torch.inference_mode():
            for _ in range(n):
                ids.append(int(model(torch.tensor([ids[-32:]])).logits[0, -1].argmax()))
        return ids[len(context):]

    def ids(n: int) -> list[int]:
        return [rng.randrange(3, vocab) for _ in range(n)]

    requests = []
    for k in range(30):
        context = ids(rng.randint(1, 45))  # over 32 + 1 tokens: cut from the left
        continuation = greedy_tokens(context, rng.randint(1, 6)) if k % 3 == 0 else ids(rng.randint(1, 8))
        requests.append(((f"c{k}", f"x{k}"), context, continuation))
    shared = ids(12)
    for k, token in enumerate([*greedy_tokens(shared, 1), *ids(3)]):  # one forward pass for the four
        requests.append(((f"s{k}", f"t{k}"), shared, [token]))
    requests += [(("a", "b"), shared[:10], shared[10:]), (("a", "bb"), shared[:11], [shared[11]])]  # one key
    answers = {}
    for name, model_class in (("ours", ProxyScoringLM), ("lm-eval", HFLM)):
        lm = model_class(pretrained=str(proxy), batch_size=8, device="cpu", dtype="float32")
        answers[name] = lm._loglikelihood_tokens(list(requests), disable_tqdm=True)
    assert answers["ours"] == answers["lm-eval"]
    assert len(answers["ours"]) == len(requests)
    greedy = [is_greedy for _, is_greedy in answers["lm-eval"]]
    assert 10 <= sum(greedy) < len(requests), greedy  # greedy continuations (every third, and one shared) and not
