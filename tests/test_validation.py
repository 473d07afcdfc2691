"""The `validate` target: held-out split before the search, target models per strategy and seed, the table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from climb.core.io import read_json, write_json
from climb.proxy.evaluate import build_heldout_tasks
from climb.validation.target_models import (
    ValidationError,
    paired_difference,
    proxy_compute,
    summarize,
    target_model_seed,
    target_model_settings,
    validation_table,
)
from tests.conftest import CI_CONFIG, job_counts, snakemake

HELDOUT = {"topic": "web", "max_docs": 100, "max_chars": 1500, "mc_items": 100, "mc_choices": 4,
           "context_chars": 120, "continuation_chars": 60, "validation_fraction": 0.5}
STRATEGIES = ["climb", "regmix", "random", "natural", "uniform"]
# the test config's run compares these (doremi trains its own two proxies; uniform is left out of it)
PIPELINE_STRATEGIES = yaml.safe_load(CI_CONFIG.read_text())["validation"]["strategies"]
TASKS = [{"task": "climb_validation_bpb", "metric": "bits_per_byte", "weight": 1.0, "higher_is_better": False},
         {"task": "climb_validation_mc", "metric": "acc", "weight": 1.0, "higher_is_better": True}]


def _heldout(path, n=40):
    words = ["request", "response", "header", "cookie", "session", "server", "client", "proxy", "socket", "url"]
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            text = " ".join(f"{words[(i * 7 + j * 3) % len(words)]}{i}.{j}" for j in range(60))  # unique words
            fh.write(json.dumps({"id": f"web-{i:03d}", "text": text, "topic": "web"}) + "\n")
            fh.write(json.dumps({"id": f"os-{i:03d}", "text": text.upper(), "topic": "os"}) + "\n")


def _rows(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def _csv(path):
    return list(csv.DictReader(Path(path).read_text(encoding="utf-8").splitlines()))


def test_validation_split_is_disjoint_from_the_search_tasks(tmp_path):
    _heldout(tmp_path / "heldout.jsonl")
    paths = [str(tmp_path / f) for f in ("bpb.jsonl", "mc.jsonl", "vbpb.jsonl", "vmc.jsonl")]
    summary = build_heldout_tasks(str(tmp_path / "heldout.jsonl"), *paths[:2], HELDOUT, 3, *paths[2:])
    bpb, mc, vbpb, vmc = (_rows(p) for p in paths)
    assert summary["search"]["documents"] == summary["validation"]["documents"] == 20
    search_ids = {r["id"] for r in bpb} | {r["id"] for r in mc}
    valid_ids = {r["id"] for r in vbpb} | {r["id"] for r in vmc}
    assert len({r["id"] for r in bpb}) == 20 and len({r["id"] for r in vbpb}) == 20
    assert search_ids.isdisjoint(valid_ids) and all(i.startswith("web-") for i in search_ids | valid_ids)
    # Distractors come from the same split: no search document's text appears in a validation question.
    search_texts = {r["text"] for r in bpb}
    for item in vmc:
        assert not any(choice in text for choice in item["choices"] for text in search_texts)
    # Without validation paths the search's files are what they were before the split existed (all documents).
    summary = build_heldout_tasks(str(tmp_path / "heldout.jsonl"), str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"),
                                  HELDOUT, 3)
    assert summary["search"]["documents"] == 40
    # Same seed, same bytes.
    again = [str(tmp_path / f"again-{k}.jsonl") for k in range(4)]
    build_heldout_tasks(str(tmp_path / "heldout.jsonl"), *again[:2], HELDOUT, 3, *again[2:])
    assert [Path(p).read_bytes() for p in again] == [Path(p).read_bytes() for p in paths]


def _report(bpb, acc):
    return {"objective": (-bpb + acc) / 2, "metrics": {"climb_validation_bpb/bits_per_byte": bpb,
                                                     "climb_validation_mc/acc": acc}, "tasks": TASKS}


def test_summary_counts_a_win_only_beyond_the_seed_std():
    scores = {"climb": [_report(2.00, 0.3), _report(2.02, 0.3)],
              "regmix": [_report(2.10, 0.3), _report(2.12, 0.3)],   # margin 0.05 > std 0.007: a win
              "random": [_report(1.90, 0.3), _report(2.20, 0.3)]}   # margin 0.02 < std 0.106: no win
    summary = summarize(["climb", "regmix", "random"], scores, TASKS)
    climb = summary["strategies"]["climb"]
    assert climb["climb_validation_bpb/bits_per_byte"]["mean"] == pytest.approx(2.01)
    assert climb["objective"]["std"] == pytest.approx(0.00707107, rel=1e-5)
    assert summary["climb_vs"]["regmix"]["climb_wins"] is True
    assert summary["climb_vs"]["random"]["margin"] == pytest.approx(0.02)
    assert summary["climb_vs"]["random"]["climb_wins"] is False
    scores["regmix"][1]["objective"] = float("nan")
    with pytest.raises(ValidationError, match="regmix.*objective is not a finite number"):
        summarize(["climb", "regmix"], scores, TASKS)


def test_paired_difference_to_climb_has_a_t_interval():
    # random: worse than climb on every seed by 0.02 +- 0.01; the seeds' spread is large, the pairing removes it
    scores = {"climb": [_report(2.00, 0.3), _report(2.30, 0.3), _report(1.80, 0.3)],
              "random": [_report(2.03, 0.3), _report(2.34, 0.3), _report(1.83, 0.3)]}
    paired = summarize(["climb", "random"], scores, TASKS)["climb_vs"]["random"]["paired"]
    d = [0.015, 0.02, 0.015]  # objective = (-bpb + acc) / 2, so a bpb gap g is g / 2
    assert paired["mean"] == pytest.approx(sum(d) / 3)
    assert paired["n"] == 3 and paired["se"] == pytest.approx(0.0016667, rel=1e-3)
    lo, hi = paired["ci"]
    assert 0 < lo < paired["mean"] < hi  # significant although the unpaired seed std (0.1) dwarfs the margin
    assert hi - lo == pytest.approx(2 * 4.302653 * paired["se"], rel=1e-5)  # t(0.975, 2 df)
    one = paired_difference([1.0], [0.5])
    assert one["mean"] == 0.5 and one["ci"] == [None, None]
    assert proxy_compute({"n_evaluated": 14}, 1000) == {"proxies": 14, "proxy_tokens": 14000}
    assert proxy_compute({"proxies": 2, "n_evaluated": 0}, 1000)["proxies"] == 2
    assert proxy_compute({"weights": {}}, 1000)["proxies"] == 0


def test_target_model_settings_name_a_bad_key():
    proxy = yaml.safe_load(CI_CONFIG.read_text())["proxy"]
    proxy = {"preset": "tiny", "seq_len": 64, "batch_size": 16, "micro_batch_size": 16, "tokens": 1000, **proxy}
    assert target_model_settings(proxy, {"preset": "small"})["preset"] == "small"
    with pytest.raises(ValidationError, match=r"unknown key\(s\) \['layers'\]"):
        target_model_settings(proxy, {"layers": 4})
    with pytest.raises(ValidationError, match="validation.model.preset"):
        target_model_settings(proxy, {"preset": "huge"})
    assert len({target_model_seed(7, k) for k in range(5)} | {7}) == 6


def test_table_files_have_one_row_per_strategy(tmp_path):
    scores, mixtures = [], []
    for k, s in enumerate(STRATEGIES):
        write_json(tmp_path / f"{s}.json", {"weights": {"0": 0.5, "1": 0.5 - 0.1 * k / 4, "3": 0.1 * k / 4},
                                            **({"n_evaluated": 14} if s == "climb" else {})})
        mixtures.append(str(tmp_path / f"{s}.json"))
        for seed in range(3):
            write_json(tmp_path / f"{s}-{seed}.json", _report(2.0 + 0.01 * k + 0.001 * seed, 0.25))
            scores.append(str(tmp_path / f"{s}-{seed}.json"))
    out = {k: str(tmp_path / f"table.{k}") for k in ("csv", "seeds", "md", "html", "json")}
    validation_table(STRATEGIES, 3, scores, mixtures, "general", {"preset": "small", "tokens": 1000}, 1, out["csv"],
                     out["seeds"], out["md"], out["html"], out["json"], proxy_tokens=500)
    rows = _csv(out["csv"])
    assert [r["strategy"] for r in rows] == STRATEGIES
    assert float(rows[0]["objective_mean"]) == pytest.approx((-2.001 + 0.25) / 2)
    assert len(_csv(out["seeds"])) == 15
    md = Path(out["md"]).read_text()
    assert md.count("\n| CLIMB |") == 2 and "| RegMix (one-shot) | +0.0050 |" in md
    assert "| 3 | 14 × 500 |" in md and "| 3 | 0 |" in md  # climb: 14 proxies of 500 tokens; the others none
    # every seed of regmix is 0.01 bpb worse: a paired difference of exactly +0.0050 with a zero-width interval
    assert "| yes | +0.0050 [+0.0050, +0.0050] |" in md
    assert read_json(out["json"])["compute"]["climb"] == {"proxies": 14, "proxy_tokens": 7000}
    assert "<td>CLIMB</td>" in Path(out["html"]).read_text()
    with pytest.raises(ValidationError, match="expected 5 x 2 score files"):
        validation_table(STRATEGIES, 2, scores, mixtures, "general", {"preset": "small", "tokens": 1000}, 1,
                         *(out[k] for k in ("csv", "seeds", "md", "html", "json")))


# --- the test config's run (the `pipeline` fixture builds the table: validation.in_all in tests/configs/ci.yaml) ---


def test_pipeline_validation_table_shape(pipeline):
    config = yaml.safe_load(CI_CONFIG.read_text())
    seeds = config["validation"]["seeds"]
    results = pipeline / "results" / "validation"
    rows = _csv(results / "validation_table.csv")
    assert [r["strategy"] for r in rows] == PIPELINE_STRATEGIES
    columns = ["climb_validation_bpb/bits_per_byte", "climb_validation_mc/acc", "objective"]
    assert list(rows[0]) == ["strategy", "seeds", *[f"{c}_{k}" for c in columns for k in ("mean", "std")]]
    assert all(int(r["seeds"]) == seeds for r in rows)
    assert all(0 < float(r["climb_validation_bpb/bits_per_byte_mean"]) < 10 for r in rows)
    assert len(_csv(results / "validation_seeds.csv")) == seeds * len(PIPELINE_STRATEGIES)
    md = (results / "validation_table.md").read_text()
    assert all(f"| {label} |" in md for label in ("CLIMB", "RegMix (one-shot)", "Best random", "DoReMi"))
    # the paired per-seed difference to CLIMB and the proxy compute: doremi spent 2 proxies, climb the search's
    assert "95% t-interval" in md
    compute = read_json(results / "validation.json")["compute"]
    assert compute["doremi"]["proxies"] == 2 and compute["natural"]["proxies"] == 0
    assert compute["climb"]["proxies"] == compute["regmix"]["proxies"] == sum(config["search"]["rounds"])
    assert "validation" in (pipeline / "results" / "report" / "validation.html").read_text().lower()
    summary = read_json(results / "validation.json")
    assert set(summary["climb_vs"]) == set(PIPELINE_STRATEGIES) - {"climb"}
    # Each strategy's target models were trained on that strategy's final mixture (CLIMB's searched one when its
    # verdict fell back to the prior), with distinct seeds.
    for s in PIPELINE_STRATEGIES:
        final_mixture = read_json(pipeline / "results" / "search" / "general" / s / "final_mixture.json")
        validated = read_json(results / s / "mixture.json")
        final = (final_mixture["searched"] if final_mixture.get("fallback") else final_mixture)["weights"]
        assert validated["weights"] == final
        assert validated["validated"] == ("searched" if final_mixture.get("fallback") else "final")
        trainings = [read_json(results / s / f"seed{k}" / "training.json") for k in range(seeds)]
        for t in trainings:
            assert t["weights"] == {k: v for k, v in final.items() if v > 0}
            assert t["tokens"] >= config["validation"]["model"]["tokens"] - t["tokens_per_step"]
        assert trainings[0]["loss"] != trainings[1]["loss"]
    proxy = read_json(pipeline / "results" / "search" / "pool" / "mix0" / "training.json")
    assert trainings[0]["n_params"] > 2 * proxy["n_params"]  # the target model is larger than the proxies


def test_pipeline_validation_scores_use_only_the_validation_split(pipeline):
    eval_dir = pipeline / "results" / "eval"
    search = {r["id"] for f in ("heldout_bpb.jsonl", "heldout_mc.jsonl") for r in _rows(eval_dir / f)}
    valid = {r["id"] for f in ("validation_bpb.jsonl", "validation_mc.jsonl") for r in _rows(eval_dir / f)}
    assert search and valid and search.isdisjoint(valid)
    scores = read_json(pipeline / "results" / "validation" / "climb" / "seed0" / "scores.json")
    assert sorted(scores["lm_eval"]["results"]) == ["climb_validation_bpb", "climb_validation_mc"]
    proxy_scores = read_json(pipeline / "results" / "search" / "pool" / "mix0" / "scores" / "general.json")
    assert sorted(proxy_scores["lm_eval"]["results"]) == ["climb_heldout_bpb", "climb_heldout_mc"]


def test_validate_is_one_target_that_trains_no_proxy_twice(pipeline, tmp_path):
    assert "Nothing to be done" in snakemake(pipeline, "-n", "validate").stdout
    # On a fresh workdir: the baselines reuse the search's proxies (sum(rounds) pool mixtures + CLIMB's proposals),
    # and the target models are strategies x seeds.
    config = yaml.safe_load(CI_CONFIG.read_text())
    rounds, seeds = config["search"]["rounds"], config["validation"]["seeds"]
    counts = job_counts(snakemake(tmp_path, "-n", "validate").stdout)
    # doremi: its reference proxy (rule train_proxy) and its DRO proxy, once for every target; and the noise floor's
    # replicates of the natural mixture and the contrasts paired with them (CLIMB's verdict reads them)
    replicates = config["search"]["replicates"]
    assert counts["train_proxy"] == sum(rounds) + sum(rounds[1:]) + 1 + replicates + max(replicates - 1, 0)
    assert counts["train_doremi_proxy"] == counts["doremi_final_mixture"] == 1
    assert counts["train_target_model"] == counts["evaluate_target_model"] == len(PIPELINE_STRATEGIES) * seeds
    assert counts["final_mixture"] == len(PIPELINE_STRATEGIES) - 1 and counts["validation_table"] == 1


@pytest.mark.parametrize(("supported", "climb_value", "outcome"), [
    (True, 2.00, "confirmed"), (True, 2.20, "contradicted"), (True, 2.095, "not confirmed"),
    (False, 2.10, "agrees"), (False, 2.00, "missed: the searched mixture validates better than natural")])
def test_a_supported_verdict_that_validation_refutes_is_flagged(supported, climb_value, outcome):
    from climb.validation.target_models import verdict_against_validation

    tasks = [TASKS[0]]
    def reports(center):
        return [{"objective": -(center + d), "metrics": {"climb_validation_bpb/bits_per_byte": center + d}}
                for d in (-0.01, 0.0, 0.01)]
    summary = summarize(["climb", "natural"], {"climb": reports(climb_value), "natural": reports(2.10)}, tasks)
    check = verdict_against_validation(summary, {"verdict": {"supported": supported}})
    assert check["outcome"] == outcome
    assert check["contradicted"] == (outcome == "contradicted")
    assert verdict_against_validation(summary, {}) is None  # no verdict (e.g. another strategy), no check


def test_target_models_validate_what_the_search_found(tmp_path):
    """An unsupported CLIMB mixture that fell back to the prior is validated with its searched weights; every other
    final mixture with its own weights."""
    from climb.validation.target_models import mixture_to_validate

    fell_back = {"weights": {"0": 0.5, "1": 0.5}, "fallback": "prior", "supported": False,
                 "searched": {"weights": {"0": 0.9, "1": 0.1}, "predicted": -2.0}}
    kept = {"weights": {"0": 0.7, "1": 0.3}, "supported": True}
    for name, final, expected, which in [("fell_back", fell_back, {"0": 0.9, "1": 0.1}, "searched"),
                                         ("kept", kept, {"0": 0.7, "1": 0.3}, "final")]:
        write_json(tmp_path / f"{name}.json", final)
        out = mixture_to_validate(str(tmp_path / f"{name}.json"), str(tmp_path / f"{name}_validated.json"))
        assert read_json(tmp_path / f"{name}_validated.json") == out
        assert out["weights"] == expected and out["validated"] == which


def test_an_unsupported_verdict_that_missed_a_gain_says_so():
    from climb.validation.target_models import verdict_against_validation

    def reports(center):
        return [{"objective": -(center + d), "metrics": {"climb_validation_bpb/bits_per_byte": center + d}}
                for d in (-0.01, 0.0, 0.01)]
    summary = summarize(["climb", "random", "natural"], {"climb": reports(2.17), "random": reports(2.10),
                                                          "natural": reports(2.17)}, [TASKS[0]])
    check = verdict_against_validation(summary, {"verdict": {"supported": False}, "fallback": "prior"})
    assert check["missed"] == ["random"] and check["outcome"].startswith("missed: random")
