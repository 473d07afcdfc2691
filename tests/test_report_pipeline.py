"""The HTML report of the small test config's run, rendered in a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess

import matplotlib.image as mpimg
import pytest

from tests.conftest import snakemake

PLOTS = ["cluster_sizes.png", "centroid_map.png", "pruning.png", "pruning.html", "superclusters.png",
         "superclusters.html", "search_mixtures.png", "search_predicted.png", "search_objective.png",
         "final_vs_prior.png", "validation.html", "quality_scores.png", "quality_scores.html", "search_signal.html"]
# validation: validation.in_all in the test config
CATEGORIES = ["1. Clusters", "2. Pruning", "3. Super-clusters", "4. Mixture search", "5. Final mixture",
              "6. Validation"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def headless(browser: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--window-size=1400,1000", "--virtual-time-budget=15000", *args],
                          capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_report_renders_in_chromium_with_every_plot(pipeline_copy):
    browser = chromium()
    for name in PLOTS:
        assert (pipeline_copy / "results" / "report" / name).stat().st_size > 1000, name
    snakemake(pipeline_copy, "--report", "report.html")
    report = pipeline_copy / "report.html"
    page = report.read_text(encoding="utf-8")
    for name in PLOTS:
        assert f"results/report/{name}" in page, f"{name} is not in the report"
    dom = headless(browser, "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    for category in CATEGORIES:  # the sidebar is built by the report's JavaScript: present only if it ran
        assert category in dom.stdout, f"{category!r} not rendered"
    shot = pipeline_copy / "report.png"
    proc = headless(browser, f"--screenshot={shot}", report.as_uri())
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    image = mpimg.imread(shot)
    assert image.shape[:2] == (1000, 1400)
    assert image[..., :3].std() > 0.1  # a rendered page, not a blank one
