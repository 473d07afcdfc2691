"""Ingest: every input row is kept or rejected with a reason that names the file and row."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from climb.corpus.ingest import IngestError, ingest_shard, summarize_corpus


def run_ingest(tmp_path: Path, input_path: Path, **kwargs):
    out = tmp_path / "out"
    shard = kwargs.pop("shard", "s")
    counts = ingest_shard(input_path, out / f"{shard}.parquet", out / f"{shard}.rejects.jsonl",
                          out / f"{shard}.counts.json", shard=shard, **kwargs)
    corpus = pq.read_table(out / f"{shard}.parquet")
    rejects = [json.loads(line) for line in (out / f"{shard}.rejects.jsonl").read_text().splitlines()]
    written = json.loads((out / f"{shard}.counts.json").read_text())
    # the accounting identity, in memory and on disk
    assert counts.input_rows == corpus.num_rows + len(rejects)
    assert written["input_rows"] == written["kept"] + written["rejected_total"] == counts.input_rows
    assert written["kept"] == corpus.num_rows
    return corpus, rejects, written


BAD_LINES: list[tuple[bytes, str, str]] = [
    # raw line, reason code, a fragment the detail must contain
    (b'{"id": "a", "text": "fine document one"}', "", ""),
    (b'{"id": "b", "text": "broken', "malformed_json", "malformed JSON"),
    (b'{"id": "c", "text": "bad \xff\xfe bytes"}', "invalid_utf8", "invalid UTF-8 at byte"),
    (b"", "blank_line", "blank line"),
    (b'["a", "list"]', "not_an_object", "not an object"),
    (b'{"id": "d"}', "missing_text", "no field 'text'"),
    (b'{"id": "e", "text": null}', "null_text", "is null"),
    (b'{"id": "f", "text": 42}', "non_string_text", "is a int"),
    (b'{"id": "g", "text": "   \\n\\t "}', "empty_text", "whitespace"),
    (b'{"id": "h", "text": ""}', "empty_text", "empty"),
    (b'{"id": ["x"], "text": "list id"}', "bad_id", "expected a string or integer"),
    (b'{"id": "a", "text": "another text, same id"}', "duplicate_id", "already used at row 0"),
    (b'{"id": "i", "text": "fine document one"}', "duplicate_text", "same text as id 'a' (row 0)"),
    (b'{"id": 7, "text": "integer ids become strings"}', "", ""),
    (b'{"text": "no id: numbered by shard and row", "origin": "natural/test"}', "", ""),
    (b'{"id": "j", "text": "' + b"x" * 500 + b'"}', "", ""),
]


def test_bad_input_matrix_jsonl(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(line for line, _, _ in BAD_LINES) + b"\n")
    corpus, rejects, counts = run_ingest(tmp_path, path, shard="mixed", max_chars=100)

    expected = {row: (reason, fragment) for row, (_, reason, fragment) in enumerate(BAD_LINES) if reason}
    got = {r["row"]: r for r in rejects}
    assert set(got) == set(expected)
    for row, (reason, fragment) in expected.items():
        assert got[row]["reason"] == reason
        assert fragment in got[row]["detail"], (row, got[row])
        assert got[row]["file"] == "mixed.jsonl"
    assert counts["rejected"] == {r: sum(1 for v in expected.values() if v[0] == r) for r in {v[0] for v in expected.values()}}

    ids = corpus.column("id").to_pylist()
    assert ids == ["a", "7", "mixed:14", "j"]
    # the long document is truncated to max_chars and counted
    assert corpus.column("n_chars").to_pylist()[-1] == 100 and counts["truncated"] == 1
    assert corpus.column("origin").to_pylist() == [None, None, "natural/test", None]
    assert set(corpus.column("source").to_pylist()) == {"mixed.jsonl"}


def test_too_long_rejected_when_configured(tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"id": "x", "text": "y" * 50}) + "\n" + json.dumps({"id": "z", "text": "ok"}) + "\n")
    corpus, rejects, counts = run_ingest(tmp_path, path, max_chars=10, on_too_long="reject")
    assert corpus.column("id").to_pylist() == ["z"]
    assert rejects[0]["reason"] == "too_long" and "50 characters > ingest.max_chars=10" in rejects[0]["detail"]


def test_exact_duplicates_can_be_kept(tmp_path):
    path = tmp_path / "dups.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "text": "same"}) + "\n" for i in range(3)))
    corpus, rejects, _ = run_ingest(tmp_path, path, drop_exact_duplicates=False)
    assert corpus.num_rows == 3 and not rejects


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_compressed_jsonl(tmp_path, suffix):
    raw = b"".join(json.dumps({"id": str(i), "text": f"document number {i}"}).encode() + b"\n" for i in range(5))
    raw += b'{"id": "bad", "text": \n'
    path = tmp_path / f"shard{suffix}"
    path.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else zstandard.ZstdCompressor().compress(raw))
    corpus, rejects, _ = run_ingest(tmp_path, path)
    assert corpus.column("id").to_pylist() == [str(i) for i in range(5)]
    assert [r["reason"] for r in rejects] == ["malformed_json"] and rejects[0]["row"] == 5


def test_parquet_input_with_nulls_and_custom_fields(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"doc": ["alpha text", None, "gamma text", "  "], "key": ["1", "2", "3", "4"]}), path)
    corpus, rejects, _ = run_ingest(tmp_path, path, text_field="doc", id_field="key", origin_field=None)
    assert corpus.column("id").to_pylist() == ["1", "3"]
    assert [(r["row"], r["reason"]) for r in rejects] == [(1, "null_text"), (3, "empty_text")]


def test_parquet_wrong_schema_names_file_and_column(tmp_path):
    missing = tmp_path / "nocol.parquet"
    pq.write_table(pa.table({"body": ["a"]}), missing)
    with pytest.raises(IngestError, match=r"nocol\.parquet: no column 'text' \(input.text_field\); columns are \['body'\]"):
        run_ingest(tmp_path, missing)
    wrong = tmp_path / "wrongtype.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), wrong)
    with pytest.raises(IngestError, match=r"wrongtype\.parquet: column 'text' has type int64, expected string"):
        run_ingest(tmp_path, wrong)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(IngestError, match=r"broken\.parquet: not a readable Parquet file"):
        run_ingest(tmp_path, broken)


def test_empty_shard_and_missing_file(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    corpus, rejects, counts = run_ingest(tmp_path, empty)
    assert corpus.num_rows == 0 and not rejects and counts["input_rows"] == 0
    assert corpus.schema.names == ["id", "text", "n_chars", "source", "origin"]
    with pytest.raises(IngestError, match=r"nowhere\.jsonl: no such input file"):
        run_ingest(tmp_path, tmp_path / "nowhere.jsonl")


def test_failed_ingest_leaves_no_output(tmp_path):
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"other": ["a"]}), bad)
    with pytest.raises(IngestError):
        run_ingest(tmp_path, bad)
    leftovers = [p.name for p in (tmp_path / "out").iterdir()] if (tmp_path / "out").exists() else []
    assert leftovers == []


def test_ids_must_be_unique_across_shards(tmp_path):
    for name, ids in (("one", ["a", "b"]), ("two", ["c", "a"])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"id": i, "text": f"{name} {i}"}) + "\n" for i in ids))
        run_ingest(tmp_path, tmp_path / f"{name}.jsonl", shard=name)
    out = tmp_path / "out"
    with pytest.raises(IngestError, match=r"id 'a' occurs in both .*one\.parquet \(from one\.jsonl\) and .*two\.parquet \(from two\.jsonl\)"):
        summarize_corpus([str(out / "one.counts.json"), str(out / "two.counts.json")],
                         [str(out / "one.parquet"), str(out / "two.parquet")], str(tmp_path / "summary.json"))
    assert not (tmp_path / "summary.json").exists()


def test_summary_totals(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"id": "1", "text": "a"}\nnot json\n{"id": "2", "text": ""}\n')
    run_ingest(tmp_path, tmp_path / "x.jsonl", shard="x")
    out = tmp_path / "out"
    summary = summarize_corpus([str(out / "x.counts.json")], [str(out / "x.parquet")], str(tmp_path / "s.json"))
    assert summary["input_rows"] == 3 and summary["kept"] == 1
    assert summary["rejected"] == {"empty_text": 1, "malformed_json": 1}
