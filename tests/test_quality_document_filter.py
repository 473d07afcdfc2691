"""Document-level quality filtering (prune.document_thresholds) and each cluster's score distribution."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from climb.filter.document_quality import cluster_score_distribution, filter_documents
from tests.conftest import CI_CONFIG, job_counts, snakemake


def test_documents_below_a_threshold_are_listed_with_the_criterion(tmp_path):
    scores = tmp_path / "scores.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "c", "d"], "advertisement": [4.0, 0.5, 3.0, 0.2],
                             "writing_quality": [3.0, 3.0, 0.9, 0.1]}), scores)
    n = filter_documents(str(scores), {"advertisement": 1.0, "writing_quality": 1.0}, str(tmp_path / "out.parquet"))
    rows = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert n == 3 and [r["id"] for r in rows] == ["b", "c", "d"]
    assert rows[0]["reason"] == "quality: advertisement 0.50 < 1" and rows[1]["reason"].startswith("quality: writing")
    with pytest.raises(ValueError, match="educational_value"):
        filter_documents(str(scores), {"educational_value": 1.0}, str(tmp_path / "x.parquet"))


def test_a_cluster_with_a_high_mean_shows_its_low_tail(tmp_path):
    # cluster 0: mostly good pages and 16% spam; its mean clears a cluster threshold of 2, its 10th percentile does not
    ids = [f"d{i}" for i in range(100)]
    pq.write_table(pa.table({"id": ids, "cluster": [0] * 50 + [1] * 50}), tmp_path / "a.parquet")
    ad = [0.0 if i < 8 else 4.5 for i in range(50)] + [3.0] * 50
    pq.write_table(pa.table({"id": ids, "advertisement": ad}), tmp_path / "s.parquet")
    d = cluster_score_distribution([str(tmp_path / "a.parquet")], [str(tmp_path / "s.parquet")], ["advertisement"],
                                   {"advertisement": 1.0}, 1000).set_index("cluster")
    assert d.loc[0, "mean"] > 2 and d.loc[0, "p10"] < 1 and d.loc[0, "below_document_threshold"] == pytest.approx(0.16)
    assert d.loc[1, "below_document_threshold"] == 0


def test_the_dag_filters_per_shard_only_when_thresholds_are_set(tmp_path):
    config = yaml.safe_load(CI_CONFIG.read_text())
    off = job_counts(snakemake(tmp_path / "w", "-n", "--quiet", "rules").stdout)
    assert "quality_filter" not in off
    config["prune"] = {"document_thresholds": {"advertisement": 1.0}}
    path = tmp_path / "on.yaml"
    path.write_text(yaml.safe_dump(config))
    on = job_counts(snakemake(tmp_path / "w", "-n", "--quiet", "rules", configfile=path).stdout)
    assert on["quality_filter"] == config["input"]["embedded"]["n_shards"] and on["report_quality_scores"] == 1
