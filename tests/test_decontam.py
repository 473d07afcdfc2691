"""Decontamination: corpus documents sharing a 13-gram with an evaluation task are removed, naming the task."""

from __future__ import annotations

import json
import random
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from climb.core.io import write_parquet
from climb.filter.decontam import (
    DecontamError,
    NgramIndex,
    build_index,
    build_index_file,
    decontaminate_shard,
    find_contaminated,
    target_tasks,
    task_data_files,
    words,
)
from tests.conftest import ROOT, shared_data

TASK_YAML = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    validation: {path}
output_type: multiple_choice
validation_split: validation
doc_to_text: "{text}"
doc_to_target: {target}
doc_to_choice: "{choice}"
should_decontaminate: true
doc_to_decontamination_query: "{query}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def _task_dir(tmp_path):
    """ARC-Easy and SciQ as lm-eval reads them (`dataset_path: json`, prompts of the stock tasks), in a group."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    data = shared_data("eval_tasks")
    (folder / "arc.yaml").write_text(TASK_YAML.format(
        name="t_arc_easy", path=data / "ai2_arc_ARC-Easy_validation.jsonl",
        text="Question: {{question}}\\nAnswer:", target='"{{choices.label.index(answerKey)}}"',
        choice="{{choices.text}}", query="Question: {{question}}\\nAnswer:"))
    (folder / "sciq.yaml").write_text(TASK_YAML.format(
        name="t_sciq", path=data / "sciq_validation.jsonl",
        text="{{support.lstrip()}}\\nQuestion: {{question}}\\nAnswer:", target=3,
        choice="{{[distractor1, distractor2, distractor3, correct_answer]}}", query="{{support}} {{question}}"))
    (folder / "group.yaml").write_text("group: t_science\ntask: [t_arc_easy, t_sciq]\n"
                                       "aggregate_metric_list:\n  - metric: acc\n")
    return folder


def _jsonl(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _plant(doc: str, passage: str, rng: random.Random) -> str:
    """Insert a passage between two paragraphs of a post, re-wrapped and re-cased as a quoting poster would."""
    paragraphs = doc.split("\n\n")
    at = rng.randint(1, max(1, len(paragraphs) - 1))
    passage = textwrap.fill(passage.upper() if rng.random() < 0.3 else passage, width=rng.choice([40, 60, 72]))
    return "\n\n".join(paragraphs[:at] + [passage] + paragraphs[at:])


@pytest.mark.slow
def test_planted_eval_passages_are_removed_naming_the_task(tmp_path):
    tasks = _task_dir(tmp_path)
    rng = random.Random(11)
    posts = [r for r in _jsonl(shared_data("20newsgroups", "20news_bydate.jsonl")) if r["split"] == "test"]
    posts = rng.sample(posts, 400)
    arc = [r for r in _jsonl(shared_data("eval_tasks", "ai2_arc_ARC-Easy_validation.jsonl"))
           if len(words(r["question"])) >= 16]
    sciq = [r for r in _jsonl(shared_data("eval_tasks", "sciq_validation.jsonl")) if len(words(r["support"])) >= 40]
    planted: dict[str, str] = {}
    texts = {r["doc_id"]: r["text"] for r in posts}
    ids = list(texts)
    targets = rng.sample(ids, 12)
    for k, doc_id in enumerate(targets[:6]):  # ARC questions, followed by the correct answer
        item = arc[rng.randrange(len(arc))]
        answer = item["choices"]["text"][item["choices"]["label"].index(item["answerKey"])]
        texts[doc_id] = _plant(texts[doc_id], f"{item['question']} {answer}" if k % 2 else item["question"], rng)
        planted[doc_id] = "t_arc_easy"
    for doc_id in targets[6:10]:  # a 20-word stretch from the middle of a SciQ support passage
        support = sciq[rng.randrange(len(sciq))]["support"].split()
        start = rng.randrange(5, len(support) - 25)
        texts[doc_id] = _plant(texts[doc_id], " ".join(support[start : start + 20]), rng)
        planted[doc_id] = "t_sciq"
    near_miss = []
    for doc_id in targets[10:]:  # 12 words of a long question: one word short of a 13-gram, stays
        item = arc[rng.randrange(len(arc))]
        texts[doc_id] = _plant(texts[doc_id], " ".join(item["question"].split()[:12]), rng)
        near_miss.append(doc_id)

    corpus = tmp_path / "corpus" / "s0.parquet"
    write_parquet(corpus, pa.table({"id": ids, "text": [texts[i] for i in ids]}))
    index, stats = tmp_path / "index.parquet", tmp_path / "index.json"
    build_index_file(["t_science"], index, stats, ngram=13, include_path=tasks)
    info = json.loads(stats.read_text())
    assert set(info["tasks"]) == {"t_arc_easy", "t_sciq"}
    assert info["tasks"]["t_arc_easy"]["ngrams"] > 1000 and info["tasks"]["t_sciq"]["ngrams"] > 10000

    out = tmp_path / "decontam" / "s0.parquet"
    removed = decontaminate_shard(corpus, index, out, ngram=13, batch_rows=64)
    table = pq.read_table(out).to_pylist()
    assert removed == len(table)
    assert {r["id"] for r in table} == set(planted), "exactly the planted documents are removed"
    for row in table:
        assert row["task"] == planted[row["id"]]
        assert f"eval task {planted[row['id']]}" in row["reason"]
        assert row["ngram"] in " ".join(words(texts[row["id"]]))
    assert not set(near_miss) & {r["id"] for r in table}

    # same inputs, same bytes
    again = tmp_path / "again.parquet"
    decontaminate_shard(corpus, index, again, ngram=13, batch_rows=1000)
    assert again.read_bytes() == out.read_bytes()


def test_ngram_matching_normalises_and_confirms_hits():
    table, stats = build_index({"qa": ["The quick brown fox jumps over the lazy dog near the river bank today.",
                                       "too short to match"]}, ngram=13)
    assert stats["qa"] == {"texts": 2, "texts_shorter_than_ngram": 1, "ngrams": 2}
    index = NgramIndex(table, 13)
    docs = {
        "a": "Intro.\nTHE QUICK brown fox -- jumps over the lazy\ndog, near the river bank. End",  # 13 words match
        "b": "the quick brown fox jumps over the lazy dog near the river",  # 12 words only
        "c": "quick brown fox jumps over the lazy dog near the river bank today",  # the other 13-gram
        "d": "",
        "e": "the quick brown fox jumps over the lazy dog near the",  # ends one document...
        "f": "river bank today",  # ...and this starts the next: windows must not span documents
    }
    rows = find_contaminated(list(docs), list(docs.values()), index)
    assert [r["id"] for r in rows] == ["a", "c"]
    assert rows[0]["reason"].startswith("shares a 13-gram with eval task qa")


def test_empty_index_removes_nothing(tmp_path):
    table, _ = build_index({}, ngram=13)
    write_parquet(tmp_path / "index.parquet", table)
    write_parquet(tmp_path / "c.parquet", pa.table({"id": ["x"], "text": ["anything at all"]}))
    assert decontaminate_shard(tmp_path / "c.parquet", tmp_path / "index.parquet", tmp_path / "out.parquet") == 0
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 0
    with pytest.raises(DecontamError, match="10-grams"):
        NgramIndex(build_index({"t": [" ".join(["w"] * 20)]}, ngram=10)[0], 13)


def test_targets_and_task_files():
    targets = {"general": {"tasks": [{"task": "climb_arc_easy", "metric": "acc", "weight": 1.0,
                                      "higher_is_better": True},
                                     {"task": "climb_heldout_bpb", "metric": "bits_per_byte", "weight": 1.0,
                                      "higher_is_better": False}]},
               "other": {"tasks": [{"task": "climb_arc_easy", "metric": "acc_norm"}]}}
    names = target_tasks(targets)
    assert names == ["climb_arc_easy", "climb_heldout_bpb"]
    with pytest.raises(DecontamError, match="targets.bad"):
        target_tasks({"bad": {"tasks": [{"task": ""}]}})
    tasks_dir = ROOT / "climb" / "tasks"
    if not (tasks_dir / "climb_heldout_bpb.yaml").exists():
        pytest.skip("the evaluation stage's task YAMLs are not there")
    files = task_data_files(names, [tasks_dir])
    assert "results/eval/heldout_bpb.jsonl" in files
    assert any(f.endswith("ai2_arc_ARC-Easy_validation.jsonl") for f in files)
    assert task_data_files(names, [tasks_dir], {"climb_arc_easy": "mine.jsonl"}) == [
        "mine.jsonl", "results/eval/heldout_bpb.jsonl"]


def test_unknown_task_is_named(tmp_path):
    folder = _task_dir(tmp_path)
    with pytest.raises(DecontamError, match="no_such_task"):
        build_index_file(["no_such_task"], tmp_path / "i.parquet", tmp_path / "i.json", include_path=folder)
