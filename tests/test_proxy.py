"""Proxy training (climb.proxy.train): mixture sampling, schedules, determinism, torchrun on CPU, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from climb.core.io import write_json, write_parquet
from climb.proxy.train import MixtureSampler, ProxyError, checkpoint_dir, lr_at, read_weights, train_proxy
from climb.search.mixture_file import MixtureError
from climb.tokens.tokenizer import load_tokenizer
from tests.test_tokenize import WORDS, make_world, synthetic_docs

SETTINGS = {
    "preset": "tiny", "model_overrides": {}, "init_from": None, "seq_len": 32, "max_position_embeddings": None, "batch_size": 8,
    "micro_batch_size": 4, "tokens": 32 * 8 * 12, "lr": 3e-3, "min_lr_ratio": 0.1, "weight_decay": 0.1,
    "betas": [0.9, 0.95], "grad_clip": 1.0, "schedule": "cosine", "warmup_fraction": 0.1, "decay_fraction": 0.2,
    "nproc": 1, "device": "cpu", "checkpoint_every": 0,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("world"), synthetic_docs(30), {0: [0], 1: [1], 2: [2]})


def weights_file(path: Path, weights: dict) -> str:
    write_json(path, {"weights": {str(k): v for k, v in weights.items()}})
    return str(path)


def train(world, tmp: Path, weights: dict, name: str = "proxy", filters: list[str] | None = None, **overrides):
    out = tmp / name
    train_proxy(weights_file(tmp / f"{name}.weights.json", weights), world.bins, world.idxs, world.superclusters,
                filters or [], world.tokenizer, str(out), str(tmp / f"{name}.training.json"),
                {**SETTINGS, **overrides}, seed=5, threads=1)
    return json.loads((tmp / f"{name}.training.json").read_text())


def test_read_weights_validates(tmp_path):
    known = [0, 1, 2]
    assert read_weights(weights_file(tmp_path / "a.json", {0: 0.25, 1: 0.75, 2: 0.0}), known) == {0: 0.25, 1: 0.75}
    for bad, message in (({0: 0.5, 1: 0.4}, "sum to"), ({0: 1.2, 1: -0.2}, ">= 0"), ({7: 1.0}, "super-cluster 7")):
        with pytest.raises(MixtureError, match=message):
            read_weights(weights_file(tmp_path / "b.json", bad), known)
    (tmp_path / "c.json").write_text('{"0": 1.0}')
    with pytest.raises(MixtureError, match="expected"):
        read_weights(str(tmp_path / "c.json"), known)


def _decoded(world, weights, filters=(), steps=range(6), n=8, seq_len=48):
    tok = load_tokenizer(world.tokenizer)
    sampler = MixtureSampler(world.bins, world.idxs, world.superclusters, list(filters), weights, seq_len, seed=3)
    out = []
    for step in steps:
        seqs, domains = sampler.batch(step, n)
        assert seqs.shape == (n, seq_len)
        out += [(tok.decode(s.tolist()), int(d)) for s, d in zip(seqs, domains, strict=True)]
    return out


def test_sampler_reads_only_the_weighted_superclusters(world):
    vocab = {0: set(WORDS[0]), 1: set(WORDS[1]), 2: set(WORDS[2])}
    own = {0: vocab[0] - vocab[1] - vocab[2], 2: vocab[2] - vocab[0] - vocab[1]}
    for text, domain in _decoded(world, {0: 0.5, 2: 0.5}, steps=range(20)):
        words = set(text.replace(".", " ").split())
        assert words & own[domain], text
        assert not words & own[2 - domain], text
        assert not words & (vocab[1] - vocab[0] - vocab[2]), text
    domains = [d for _, d in _decoded(world, {0: 0.2, 2: 0.8}, steps=range(25))]
    assert 0.7 < np.mean(np.array(domains) == 2) < 0.9  # 200 draws at 0.8


def test_sampler_is_seeded_and_stateless(world):
    sampler = MixtureSampler(world.bins, world.idxs, world.superclusters, [], {0: 0.5, 1: 0.5}, 16, seed=3)
    a = [sampler.batch(s, 4)[0] for s in (0, 1, 2)]
    again = MixtureSampler(world.bins, world.idxs, world.superclusters, [], {0: 0.5, 1: 0.5}, 16, seed=3)
    assert all((x == again.batch(s, 4)[0]).all() for s, x in zip((2, 1, 0), a[::-1], strict=True))
    other = MixtureSampler(world.bins, world.idxs, world.superclusters, [], {0: 0.5, 1: 0.5}, 16, seed=4)
    assert not (other.batch(0, 4)[0] == a[0]).all()


def test_sampler_excludes_filtered_ids(world, tmp_path):
    # Documents of cluster 0 are s0-0, s1-3, s0-6, ... (every third row, alternating shards); "Doc 1." is s1-3.
    marker = "Doc 1."
    texts = [t for t, _ in _decoded(world, {0: 1.0}, steps=range(60))]
    assert any(marker in t for t in texts)
    filtered = tmp_path / "filter.parquet"
    write_parquet(filtered, pa.table({"id": ["s1-3"], "reason": ["test"]}))
    texts = [t for t, _ in _decoded(world, {0: 1.0}, filters=[str(filtered)], steps=range(60))]
    assert not any(marker in t for t in texts)


def test_weight_on_an_emptied_supercluster_is_an_error(world, tmp_path):
    filtered = tmp_path / "all.parquet"
    ids = [f"s{i % 2}-{i}" for i in range(0, 90, 3)]  # every document of cluster 0
    write_parquet(filtered, pa.table({"id": ids, "reason": ["test"] * len(ids)}))
    with pytest.raises(ProxyError, match="super-cluster 0 has weight"):
        MixtureSampler(world.bins, world.idxs, world.superclusters, [str(filtered)], {0: 0.5, 1: 0.5}, 16, seed=3)


@pytest.mark.parametrize("schedule", ["cosine", "wsd"])
def test_schedules(schedule):
    settings = {**SETTINGS, "schedule": schedule, "warmup_fraction": 0.1, "decay_fraction": 0.2}
    lrs = [lr_at(s, 100, settings) for s in range(100)]
    assert lrs[0] == pytest.approx(3e-4) and lrs[9] == pytest.approx(3e-3)
    assert lrs[-1] == pytest.approx(3e-4, rel=0.05)
    assert max(lrs) == pytest.approx(3e-3)
    if schedule == "wsd":
        assert all(lr == pytest.approx(3e-3) for lr in lrs[10:80]) and lrs[90] < 3e-3
    else:
        assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False)) and lrs[50] < 3e-3


def test_same_seed_same_loss_curve(world, tmp_path):
    a = train(world, tmp_path, {0: 0.5, 1: 0.5}, "a")
    b = train(world, tmp_path, {0: 0.5, 1: 0.5}, "b")
    assert a["loss"] == b["loss"] and len(a["loss"]) == 12
    assert a["loss"][-1] < a["loss"][0] - 0.5
    assert set(a["tokens_per_supercluster"]) == {"0", "1"} and sum(a["tokens_per_supercluster"].values()) == a["tokens"]
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "a")
    assert model.config.max_position_embeddings == SETTINGS["seq_len"]
    assert load_tokenizer(tmp_path / "a").eos_token == "<|endoftext|>"
    assert not checkpoint_dir(tmp_path / "a").exists()
    c = train(world, tmp_path, {0: 0.5, 2: 0.5}, "c")
    assert c["loss"] != a["loss"]


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(world, tmp_path):
    single = train(world, tmp_path, {1: 0.3, 2: 0.7}, "single")
    double = train(world, tmp_path, {1: 0.3, 2: 0.7}, "double", nproc=2)
    assert double["world_size"] == 2 and single["world_size"] == 1
    assert (tmp_path / "double" / "model.safetensors").exists()
    # Same data and same initial weights: the curves agree up to float reduction order.
    assert double["loss"] == pytest.approx(single["loss"], rel=1e-3)


@pytest.mark.slow
def test_killed_proxy_resumes_from_checkpoint(world, tmp_path):
    settings = {**SETTINGS, "tokens": 32 * 8 * 150, "checkpoint_every": 10}
    reference = train(world, tmp_path, {0: 0.6, 1: 0.4}, "reference", **settings)
    args = {"weights": {"0": 0.6, "1": 0.4}, "bin_paths": world.bins, "idx_paths": world.idxs,
            "superclusters_path": world.superclusters, "filter_paths": [], "tokenizer_dir": world.tokenizer,
            "out_dir": str(tmp_path / "killed"), "curve_path": str(tmp_path / "killed.training.json"),
            "settings": settings, "seed": 5, "threads": 1}
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps(args))
    cmd = [sys.executable, "-m", "climb.proxy.train", str(args_file)]
    state = checkpoint_dir(tmp_path / "killed") / "state.pt"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "training finished before it could be killed"
    assert state.exists() and not (tmp_path / "killed").exists()

    resumed = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from checkpoint" in resumed.stderr
    curve = json.loads((tmp_path / "killed.training.json").read_text())
    assert curve["resumed_at_step"] >= 10 and curve["resumed_at_step"] % 10 == 0
    assert curve["loss"] == pytest.approx(reference["loss"], rel=1e-6)
    assert not state.parent.exists()


def test_init_from_a_pretrained_checkpoint(world, tmp_path):
    fresh = train(world, tmp_path, {0: 1.0}, "fresh")
    continued = train(world, tmp_path, {0: 1.0}, "continued", init_from=str(tmp_path / "fresh"))
    # The continued proxy starts where the first one ended, far below a fresh model's first loss.
    assert continued["loss"][0] < fresh["loss"][0] - 1.0
    assert continued["loss"][0] == pytest.approx(fresh["loss"][-1], abs=0.5)
    from climb.proxy.train import build_model

    build_model(SETTINGS, 100, seed=0).save_pretrained(tmp_path / "small")
    with pytest.raises(ProxyError, match="vocabulary 100 is smaller than the tokenizer's 400"):
        build_model({**SETTINGS, "init_from": str(tmp_path / "small")}, 400, seed=0)


TRAIN_IN_A_PROCESS = """
import json, logging, sys
import climb.proxy.train as train
logging.basicConfig(level=logging.INFO)
if sys.argv[2] == "default":  # glibc's own allocator: large tensors mapped afresh every step
    train.keep_freed_memory = lambda: False
train.train_proxy(**json.loads(sys.argv[1]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_kept_freed_memory_trains_the_same_bytes(world, tmp_path):
    """A CPU proxy job keeps its freed memory for reuse (climb/compute/allocator.py): the same model bytes as with
    glibc's default, and the job says so in its log."""
    logs = {}
    for mode in ("default", "kept"):
        arguments = {"weights_path": weights_file(tmp_path / "w.json", {0: 0.5, 2: 0.5}), "bin_paths": world.bins,
                     "idx_paths": world.idxs, "superclusters_path": world.superclusters, "filter_paths": [],
                     "tokenizer_dir": world.tokenizer, "out_dir": str(tmp_path / mode),
                     "curve_path": str(tmp_path / f"{mode}.json"), "settings": SETTINGS, "seed": 5, "threads": 1}
        proc = subprocess.run([sys.executable, "-c", TRAIN_IN_A_PROCESS, json.dumps(arguments), mode],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        logs[mode] = proc.stderr
    assert "glibc malloc" in logs["kept"] and "glibc malloc" not in logs["default"]
    kept, default = ((tmp_path / m / "model.safetensors").read_bytes() for m in ("kept", "default"))
    assert kept == default
