"""The embedded default (config.yaml as shipped): its corpus and what k-means makes of it."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pyarrow.parquet as pq
import pytest

SHARDS = [f"embedded-{i:03d}" for i in range(4)]


def origins_and_clusters(workdir):
    pairs = []
    for shard in SHARDS:
        origins = pq.read_table(workdir / "results" / "corpus" / f"{shard}.parquet", columns=["origin"])
        clusters = pq.read_table(workdir / "results" / "kmeans" / "assign" / f"{shard}.parquet", columns=["cluster"])
        pairs += zip(origins.column("origin").to_pylist(), clusters.column("cluster").to_pylist(), strict=True)
    return pairs


@pytest.mark.slow
def test_embedded_default_size_and_labels(default_pipeline):
    manifest = json.loads((default_pipeline / "results" / "embedded" / "manifest.json").read_text())
    assert manifest["documents"] >= 3000
    by_origin = manifest["by_origin"]
    assert len([o for o in by_origin if o.startswith("natural/")]) >= 6
    assert len([o for o in by_origin if o.startswith("planted/")]) >= 5
    natural = {o: n for o, n in by_origin.items() if o.startswith("natural/")}
    # docs_per_topic each, except a topic with fewer documents than that plus its held-out ones (os: 444 - 120)
    assert sum(n == 400 for n in natural.values()) >= 6 and min(natural.values()) >= 300, by_origin
    assert manifest["heldout"] == 120 * len(natural)


@pytest.mark.slow
def test_each_planted_kind_sits_in_clusters_it_dominates(default_pipeline):
    """Each planted low-quality kind: most of its documents are in clusters where that kind is the majority."""
    pairs = origins_and_clusters(default_pipeline)
    members: dict[int, Counter] = defaultdict(Counter)
    for origin, cluster in pairs:
        members[cluster][origin] += 1
    kinds = sorted({o for o, _ in pairs if o.startswith("planted/")})
    report = {}
    for kind in kinds:
        total = sum(1 for o, _ in pairs if o == kind)
        dominated = sum(count[kind] for count in members.values() if count[kind] > sum(count.values()) / 2)
        report[kind] = dominated / total
    print("share of each planted kind in clusters it dominates:", report)
    assert all(share > 0.5 for share in report.values()), report


def test_definitions_are_found_in_ast_walks_order():
    """The corpus build walks only statements for functions and classes: the same nodes, in ast.walk's order."""
    import ast
    import sysconfig
    from pathlib import Path

    from climb.corpus.embedded_corpus import _definitions

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(stdlib.glob("*.py"))[:80] + sorted((stdlib / "asyncio").glob("*.py"))
    found = 0
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        expected = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
        assert list(_definitions(tree)) == expected, path
        found += len(expected)
    assert found > 1000
    # definitions under if/try/with/match and inside functions and classes, which an expression walk would skip
    source = ("if x:\n    def a(): pass\ntry:\n    class B:\n        def c(self):\n            def d(): pass\n"
              "except E:\n    def e(): pass\nwith f:\n    def g(): pass\nmatch y:\n    case 1:\n        def h(): pass\n")
    names = [n.name for n in _definitions(ast.parse(source))]
    assert sorted(names) == list("Bacdegh")


def test_passages_are_the_same_in_two_processes(monkeypatch):
    from climb.corpus import embedded_corpus

    monkeypatch.setattr(embedded_corpus, "TOPICS", {"text": ["textwrap", "difflib", "string"],
                                                    "web": ["json", "email", "http"]})
    one = embedded_corpus.natural_documents(200, 2000, processes=1)
    assert one == embedded_corpus.natural_documents(200, 2000, processes=2)
    assert all(len(texts) > 10 for texts in one.values())
