"""input.shards_per_job: input shards batched into corpus shards, one job of each per-shard rule per batch.

Batches are cut where a hash of a shard's name says so, so an added shard reruns only the batch it joins; ingest
reads each input shard of a batch as if alone, so ids and kept rows do not depend on the batching.
"""

from __future__ import annotations

import json
import random
import re

import pyarrow.parquet as pq
import pytest
import yaml

from climb.corpus.ingest import IngestError, ingest_shard, summarize_corpus
from climb.corpus.shards import ShardError, batch_shards, select_fit_shards
from tests.conftest import job_counts, snakemake

NAMES = [f"CC-MAIN-2024-{i:05d}" for i in range(3000)]


def members(batches: dict[str, list[str]]) -> set[tuple[str, ...]]:
    return {tuple(names) for names in batches.values()}


def test_one_shard_per_job_keeps_every_shard_its_own_job():
    assert batch_shards(NAMES[:50], 1) == {name: [name] for name in NAMES[:50]}


@pytest.mark.parametrize("per_job", [2, 5, 20, 50])
def test_batches_cover_every_shard_in_order_about_per_job_each(per_job):
    batches = batch_shards(random.Random(0).sample(NAMES, len(NAMES)), per_job)
    assert [name for names in batches.values() for name in names] == sorted(NAMES)
    assert all(batch == names[0] for batch, names in batches.items())  # named after its first input shard
    sizes = [len(names) for names in batches.values()]
    assert max(sizes) <= 2 * per_job
    assert 0.8 * per_job <= len(NAMES) / len(batches) <= 1.2 * per_job, (len(batches), per_job)


@pytest.mark.parametrize("per_job", [2, 5, 20, 50])
def test_an_added_shard_reruns_the_batch_it_joins_and_seldom_another(per_job):
    """Measured over 1,000 insertions: the batch the shard joins changes, its neighbour in ~15% of cases (a cut
    that moves), and a cascade never reaches far (up to 6 batches at 5 per job)."""
    before = members(batch_shards(NAMES, per_job))
    changed = []
    for i in range(0, len(NAMES), 3):
        added = NAMES[i] + "-late"  # sorts right after NAMES[i]
        after = members(batch_shards([*NAMES, added], per_job))
        assert sum(added in names for names in after - before) == 1
        changed.append(len(before - after))
    assert sum(changed) / len(changed) <= 1.3 and max(changed) <= 8, sorted(changed)[-10:]


def test_fit_shards_select_the_batches_holding_them():
    batches = batch_shards(NAMES[:200], 10)
    first = select_fit_shards(batches, 15)
    held = [name for batch in first for name in batches[batch]]
    assert set(NAMES[:15]) <= set(held) and held[0] == NAMES[0]
    assert len(first) == len({b for b, names in batches.items() if set(names) & set(NAMES[:15])})
    assert select_fit_shards(batches, [NAMES[150]]) == [b for b, names in batches.items() if NAMES[150] in names]
    with pytest.raises(ShardError, match="unknown shard"):
        select_fit_shards(batches, ["nope"])
    with pytest.raises(ShardError, match=">= 1"):
        batch_shards(NAMES, 0)


def _write(path, rows):
    path.write_text("".join((json.dumps(r) if isinstance(r, dict) else r) + "\n" for r in rows))
    return path


def test_a_batch_ingests_each_input_shard_as_if_alone(tmp_path):
    a = _write(tmp_path / "a.jsonl", [{"text": "alpha"}, {"text": "beta"}, "{broken", {"text": "alpha"}])
    b = _write(tmp_path / "b.jsonl", [{"text": "alpha"}, {"text": ""}, {"text": "gamma"}])
    out = tmp_path / "out"
    out.mkdir()
    batch = ingest_shard([a, b], out / "a.parquet", out / "a.rejects.jsonl", out / "a.json", shard="a",
                         id_field=None)
    alone = [ingest_shard(p, out / f"{p.stem}1.parquet", out / f"{p.stem}1.rejects.jsonl", out / f"{p.stem}1.json",
                          shard=p.stem, id_field=None) for p in (a, b)]
    rows = pq.read_table(out / "a.parquet").to_pylist()
    assert rows == [r for p in (a, b) for r in pq.read_table(out / f"{p.stem}1.parquet").to_pylist()]
    assert [(r["id"], r["source"]) for r in rows] == [("a:0", "a.jsonl"), ("a:1", "a.jsonl"), ("b:0", "b.jsonl"),
                                                       ("b:2", "b.jsonl")]  # b's "alpha" is a's text, not a duplicate
    rejects = [json.loads(line) for line in (out / "a.rejects.jsonl").read_text().splitlines()]
    assert [(r["file"], r["row"], r["reason"]) for r in rejects] == [
        ("a.jsonl", 2, "malformed_json"), ("a.jsonl", 3, "duplicate_text"), ("b.jsonl", 1, "empty_text")]
    counts = json.loads((out / "a.json").read_text())
    assert counts["files"] == ["a.jsonl", "b.jsonl"]
    assert counts["input_rows"] == 7 == batch.kept + sum(batch.rejected.values())
    assert counts["kept"] == sum(c.kept for c in alone) == 4


def test_an_id_in_two_input_shards_of_one_batch_is_an_error_naming_both(tmp_path):
    a = _write(tmp_path / "a.jsonl", [{"id": "x", "text": "alpha"}])
    b = _write(tmp_path / "b.jsonl", [{"id": "x", "text": "beta"}])
    ingest_shard([a, b], tmp_path / "c.parquet", tmp_path / "r.jsonl", tmp_path / "n.json", shard="a")
    with pytest.raises(IngestError, match=r"id 'x' occurs in both .*c\.parquet \(from a\.jsonl\) and "
                                          r".*c\.parquet \(from b\.jsonl\)"):
        summarize_corpus([str(tmp_path / "n.json")], [str(tmp_path / "c.parquet")], str(tmp_path / "s.json"))


def test_dag_runs_one_job_per_batch_and_runtime_per_input_shard(tmp_path):
    """The embedded default's 4 shards at 2 per job: every per-shard rule has one job per batch, and a job asks
    SLURM for its rule's runtime once per input shard in it."""
    names = [f"embedded-{i:03d}" for i in range(4)]
    batches = batch_shards(names, 2)
    assert len(batches) < 4
    overlay = tmp_path / "batch.yaml"
    overlay.write_text("input:\n  shards_per_job: 2\n")
    proc = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(overlay), "--config", "preflight=off",
                     configfile=None)
    counts = job_counts(proc.stdout)
    for rule in ("ingest", "embed", "assign_clusters", "score_quality", "decontam", "tokenize", "climbmix_select"):
        assert counts[rule] == len(batches), (rule, counts)
    text = proc.stdout
    for batch, shard_names in batches.items():
        embed = text[text.index(f"output: results/embed/{batch}.npy"):]
        embed = embed[:embed.index("\n\n")]
        assert f"runtime={60 * len(shard_names)}" in embed, embed  # placement: embed is 60 minutes a shard
        ingest_inputs = text[:text.index(f"output: results/corpus/{batch}.parquet")].rsplit("input:", 1)[1]
        assert sorted(re.findall(r"results/embedded/([\w-]+)\.jsonl", ingest_inputs)) == shard_names, ingest_inputs


def _ingest_jobs(dry_run: str) -> set[str]:
    return set(re.findall(r"output: results/corpus/([\w-]+)\.parquet", dry_run))


def test_an_added_shard_reruns_only_the_batches_it_changes(tmp_path):
    """A real corpus of 12 JSONL shards at 3 per job, ingested; then a 13th shard: a dry run reruns the ingest of
    the one batch it joins, no other (fixed-size batches would move every later batch)."""
    names = [f"web-{i:02d}" for i in range(0, 24, 2)]
    added = "web-13"  # sorts between web-12 and web-14
    for name in [*names, added]:
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"id": f"{name}-{r}", "text": f"{name} row {r}"})
                                                        + "\n" for r in range(3)))
    config = tmp_path / "corpus.yaml"
    config.write_text(yaml.safe_dump({"input": {"shards": [str(tmp_path / f"{n}.jsonl") for n in names],
                                                "shards_per_job": 3}, "preflight": "off"}))
    before = batch_shards(names, 3)
    assert 1 < len(before) < len(names)
    snakemake(tmp_path, "--cores", "2", "results/corpus/summary.json", configfile=config)
    assert json.loads((tmp_path / "results/corpus/summary.json").read_text())["kept"] == 3 * len(names)

    config.write_text(yaml.safe_dump({"input": {"shards": [str(tmp_path / f"{n}.jsonl") for n in [*names, added]],
                                                "shards_per_job": 3}, "preflight": "off"}))
    after = batch_shards([*names, added], 3)
    joined = next(batch for batch, members in after.items() if added in members)
    assert {batch for batch, members in after.items() if before.get(batch) != members} == {joined}
    dry = snakemake(tmp_path, "-n", "results/corpus/summary.json", configfile=config).stdout
    assert _ingest_jobs(dry) == {joined}, dry[-3000:]  # one ingest job of 3-4 shards, not the other batches
