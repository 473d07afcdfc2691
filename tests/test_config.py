"""Config: every key documented with a default; a bad config stops before any job, naming the key."""

from __future__ import annotations

import pytest
import yaml

from climb.core.config import ConfigError, check_config, load_schema
from climb.corpus.shards import ShardError, batch_shards, resolve_shards, select_fit_shards, shard_name
from tests.conftest import ROOT, snakemake


def _walk(schema, path="config"):
    for key, sub in schema.get("properties", {}).items():
        yield f"{path}.{key}", sub
        yield from _walk(sub, f"{path}.{key}")
        if isinstance(sub.get("additionalProperties"), dict):
            yield from _walk(sub["additionalProperties"], f"{path}.{key}.<name>")
        if isinstance(sub.get("items"), dict):
            yield from _walk(sub["items"], f"{path}.{key}[]")


def test_every_key_has_description_and_default():
    schema = load_schema()
    keys = list(_walk(schema))
    assert len(keys) > 20
    for path, sub in keys:
        if "[]" in path or "<name>" in path:
            continue  # fields of list items / map values: described, defaulted by their parent
        assert sub.get("description"), f"{path} has no description"
        assert "default" in sub, f"{path} has no default"


def test_shipped_configs_are_valid():
    for path in [ROOT / "config.yaml", *sorted((ROOT / "configs").glob("*.yaml")), *sorted((ROOT / "tests" / "configs").glob("*.yaml"))]:
        check_config(yaml.safe_load(path.read_text()) or {})


@pytest.mark.parametrize("config, message", [
    ({"clustr": {"k": 5}}, "unknown config key clustr at the top level"),
    ({"cluster": {"k": 5, "kk": 1}}, "unknown config key cluster.kk under cluster"),
    ({"cluster": {"k": 1}}, "config key cluster.k: 1 is less than the minimum of 2"),
    ({"embed": {"batch_size": "big"}}, "config key embed.batch_size: 'big' is not of type 'integer'"),
    ({"ingest": {"on_too_long": "drop"}}, "config key ingest.on_too_long: 'drop' is not one of ['truncate', 'reject']"),
    ({"seed": -1}, "config key seed: -1 is less than the minimum of 0"),
    ({"cluster": {"fit_shards": []}}, "config key cluster.fit_shards"),
])
def test_bad_config_names_the_key(config, message):
    with pytest.raises(ConfigError) as err:
        check_config(config)
    assert message in str(err.value)


def test_bad_config_stops_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster:\n  k: 1\n")
    proc = snakemake(tmp_path, "--cores", "1", configfile=bad, check=False)
    assert proc.returncode != 0
    assert "config key cluster.k: 1 is less than the minimum of 2" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_shard_discovery(tmp_path):
    for name in ("b.jsonl", "a.jsonl.gz", "c.parquet", "d.jsonl.zst"):
        (tmp_path / name).write_bytes(b"")
    shards = resolve_shards([str(tmp_path / "*.jsonl*"), str(tmp_path / "c.parquet")])
    assert list(shards) == ["a", "b", "c", "d"]
    assert select_fit_shards(batch_shards(list(shards), 1), 2) == ["a", "b"]
    assert select_fit_shards(batch_shards(list(shards), 1), ["d", "a"]) == ["a", "d"]
    with pytest.raises(ShardError, match="unknown shard"):
        select_fit_shards(batch_shards(list(shards), 1), ["zz"])
    with pytest.raises(ShardError, match="matches no file"):
        resolve_shards([str(tmp_path / "*.csv")])
    with pytest.raises(ShardError, match="no such file"):
        resolve_shards([str(tmp_path / "missing.jsonl")])
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jsonl").write_bytes(b"")
    with pytest.raises(ShardError, match="shard name 'a' is given by both"):
        resolve_shards([str(tmp_path / "a.jsonl.gz"), str(tmp_path / "sub" / "a.jsonl")])
    with pytest.raises(ShardError, match="not an input shard"):
        shard_name("x.csv")


def test_missing_input_path_stops_the_dag(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"input:\n  shards: ['{tmp_path}/nowhere/*.jsonl']\n")
    proc = snakemake(tmp_path, "-n", configfile=cfg, check=False)
    assert proc.returncode != 0 and "matches no file" in proc.stdout + proc.stderr
