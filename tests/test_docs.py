"""The README and docs/ describe what is there: size limits, links that resolve, the generated rule graph current,
and nothing shipped that points outside the repository."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import BIN, ROOT

SHIPPED = ["climb", "rules", "scripts", "configs", "profiles", "envs", "docs", "Snakefile", "config.yaml", "Makefile",
           "README.md", "pyproject.toml"]


def test_readme_is_short_and_its_links_resolve():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines (at most 150)"
    long = [i + 1 for i, line in enumerate(lines) if len(line) > 120]
    assert not long, f"README.md lines over 120 characters: {long}"
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name} links to {target}, which does not exist"


def test_nothing_shipped_points_outside_the_repository():
    out = subprocess.run(["git", "grep", "-n", "-I", "-e", "../shared", "--", *SHIPPED], cwd=ROOT, capture_output=True,
                         text=True)
    # the benchmark suite (climb/bench) names its data root in one setting, CLIMB_DATA_ROOT
    hits = [line for line in out.stdout.splitlines() if not line.startswith("climb/bench/")]
    assert not hits, "shipped files refer to ../shared:\n" + "\n".join(hits)


def test_rule_graph_picture_is_current(tmp_path):
    """docs/rulegraph.svg (`make docs`) shows exactly the rules of `snakemake all validate` on the embedded default."""
    dot = subprocess.run([str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
                          "--rulegraph", "dot", "all", "validate"], capture_output=True, text=True, check=True).stdout
    rules = set(re.findall(r'label = "(\w+)"', dot))
    pictured = set(re.findall(r">(\w+)</text>", (ROOT / "docs" / "rulegraph.svg").read_text()))
    assert rules and pictured == rules, f"docs/rulegraph.svg is out of date (run `make docs`): {pictured ^ rules}"
