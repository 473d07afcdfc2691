"""ClimbMix, ClimbLab and blends of the small test config's run (the `pipeline` fixture)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from climb.export.climbmix import sha256_file
from tests.conftest import ROOT, snakemake


def load(workdir: Path, path: str):
    return json.loads((workdir / path).read_text())


def exported_weights(workdir: Path, manifest: dict) -> dict[str, float]:
    """The weights of the mixture file the manifest was made from (found by its sha256): a final mixture or the prior."""
    candidates = [*(workdir / "results" / "search").glob("*/*/final_mixture.json"), workdir / "results/tokens/prior.json"]
    matches = [p for p in candidates if p.exists() and sha256_file(p) == manifest["mixture_sha256"]]
    assert matches, "no final_mixture.json (or prior.json) matches the manifest's mixture_sha256"
    data = json.loads(matches[0].read_text())
    return data["weights"] if "weights" in data else data["prior"]


def read_parts(workdir: Path, manifest: dict) -> pa.Table:
    return pa.concat_tables([pq.read_table(workdir / "results" / "climbmix" / p["path"]) for p in manifest["parts"]])


def test_climbmix_tokens_meet_weight_times_budget(pipeline):
    manifest = load(pipeline, "results/climbmix/manifest.json")
    mixture = exported_weights(pipeline, manifest)
    budget = manifest["token_budget"]
    table = read_parts(pipeline, manifest)
    sc = table["super_cluster"].to_numpy()
    tokens = table["n_tokens"].to_numpy().astype(np.int64)
    checked_at_1pc = 0
    for s, entry in manifest["super_clusters"].items():
        target = mixture.get(s, 0.0) * budget
        realised = int(tokens[sc == int(s)].sum())
        assert entry["realised_tokens"] == realised
        assert entry["target_tokens"] == round(target)
        if target == 0:
            assert realised == 0
            continue
        longest = int(tokens[sc == int(s)].max())
        # never more than one document off; within 1% wherever a document is small against the target
        assert abs(realised - target) <= max(0.01 * target, longest), (s, realised, target, longest)
        if target >= 100 * longest:
            assert abs(realised - target) <= 0.01 * target, (s, realised, target)
            checked_at_1pc += 1
    assert checked_at_1pc >= 1, "no super-cluster large enough to check the 1% bound; raise export.token_budget"
    assert manifest["realised_tokens"] == int(tokens.sum())


def test_climbmix_holds_only_kept_unfiltered_documents(pipeline):
    manifest = load(pipeline, "results/climbmix/manifest.json")
    table = read_parts(pipeline, manifest)
    assert table.column_names == ["id", "text", "super_cluster", "cluster", "n_tokens"]
    mapping = {int(c): s for c, s in load(pipeline, "results/clusters/superclusters.json")["cluster_to_supercluster"].items()}
    clusters = table["cluster"].to_numpy()
    assert np.array_equal(np.array([mapping[int(c)] for c in clusters]), table["super_cluster"].to_numpy())
    filtered = [p for d in ("dedup", "decontam") for p in (pipeline / "results" / "filter" / d).glob("*.parquet")]
    assert filtered, "the test config runs no filters"
    removed = pa.concat_arrays([pq.read_table(p, columns=["id"])["id"].combine_chunks() for p in filtered])
    assert len(removed) > 0
    assert not pc.any(pc.is_in(table["id"], value_set=removed)).as_py()
    # the text and token count of every row are its corpus text and its token index length
    corpus = pa.concat_tables([pq.read_table(p, columns=["id", "text"])
                               for p in sorted((pipeline / "results" / "corpus").glob("*.parquet"))])
    text = dict(zip(corpus["id"].to_pylist(), corpus["text"].to_pylist(), strict=True))
    assert all(text[i] == t for i, t in zip(table["id"].to_pylist(), table["text"].to_pylist(), strict=True))


def test_every_part_matches_its_sha256(pipeline):
    manifest = load(pipeline, "results/climbmix/manifest.json")
    on_disk = sorted(p.name for p in (pipeline / "results" / "climbmix").glob("part-*.parquet"))
    assert on_disk == sorted(p["path"] for p in manifest["parts"]) and len(on_disk) >= 2
    for part in manifest["parts"]:
        assert sha256_file(pipeline / "results" / "climbmix" / part["path"]) == part["sha256"]
    assert manifest["config_hash"] and manifest["code_version"]["climb"] and manifest["packages"]["pyarrow"]


@pytest.mark.slow
def test_same_seed_gives_identical_manifest(pipeline_copy):
    """Rerun only the export (ClimbMix outputs deleted) on a copy: the same bytes come back."""
    first = (pipeline_copy / "results" / "climbmix" / "manifest.json").read_bytes()
    shutil.rmtree(pipeline_copy / "results" / "climbmix")
    shutil.rmtree(pipeline_copy / "results" / "export")
    proc = snakemake(pipeline_copy, "--cores", "2", "--rerun-triggers=mtime", "results/climbmix/manifest.json")
    ran = {line.split()[-1].rstrip(":") for line in (proc.stdout + proc.stderr).splitlines() if line.strip().startswith(("rule ", "localrule "))}
    assert ran == {"climbmix_plan", "climbmix_select", "climbmix"}, ran
    second = (pipeline_copy / "results" / "climbmix" / "manifest.json").read_bytes()
    a, b = json.loads(first), json.loads(second)
    commit_a, commit_b = a["code_version"]["git_commit"], b["code_version"]["git_commit"]
    if commit_a and commit_b and commit_a != commit_b:
        # HEAD moved between the two runs (others committing while developing): it must have moved forward;
        # compare everything else
        moved = subprocess.run(["git", "merge-base", "--is-ancestor", commit_a, commit_b], cwd=ROOT)
        assert moved.returncode == 0, f"git commit changed from {commit_a} to {commit_b}, not a later commit"
        a["code_version"]["git_commit"] = commit_b
        assert a == b
    else:
        assert first == second


def test_blends_are_the_final_weights(pipeline):
    manifest = load(pipeline, "results/climbmix/manifest.json")
    weights = exported_weights(pipeline, manifest)
    names = {str(s["id"]): s["name"] for s in load(pipeline, "results/clusters/superclusters.json")["superclusters"]}
    plain = load(pipeline, "results/blend/weights.json")
    assert plain == pytest.approx({names[s]: w for s, w in weights.items()}, abs=1e-12)
    fields = (pipeline / "results" / "blend" / "megatron_data_path.txt").read_text().split()
    pairs = dict(zip(fields[1::2], map(float, fields[0::2]), strict=True))
    assert pairs == pytest.approx({f"climblab/{names[s]}/{names[s]}_text_document": w
                                   for s, w in weights.items() if w > 0}, rel=1e-9)


def test_climblab_is_the_usable_corpus_by_supercluster(pipeline):
    prior = load(pipeline, "results/tokens/prior.json")
    names = {str(s["id"]): s["name"] for s in load(pipeline, "results/clusters/superclusters.json")["superclusters"]}
    manifest = load(pipeline, "results/climblab/manifest.json")
    for s, name in names.items():
        files = sorted((pipeline / "results" / "climblab" / name).glob("*.parquet"))
        table = pa.concat_tables([pq.read_table(f) for f in files])
        assert table.num_rows == prior["docs"][s] == manifest["super_clusters"][s]["documents"]
        assert int(pc.sum(table["n_tokens"]).as_py()) == prior["tokens"][s]
        assert pc.all(pc.equal(table["super_cluster"], int(s))).as_py()
        assert len(set(table["id"].to_pylist())) == table.num_rows
