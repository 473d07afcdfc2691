"""Throughput of proxy training and of lm-eval scoring, each against a bare PyTorch baseline.

``python -m climb.bench.proxy_throughput [--preset tiny] [--steps 40] [--out bench.json]`` builds a small synthetic corpus
(tokenizer, packed tokens, two super-clusters) in a temporary folder, then measures:

- training: ``train_proxy`` tokens/s (its own timer, after start-up) vs a bare loop with the same model, batch
  shapes, AdamW and step count on random token ids (no sampler, no schedule, no logging);
- scoring: ``evaluate_proxy`` (lm-eval, start-up included: tasks, model, requests) on the embedded default's target
  (schema defaults: held-out bits per byte on 60 documents of up to 1,500 characters, and 60 four-way
  continuation-choice items) tokens/s vs bare ``model(input_ids)`` forward passes over the same token sequences
  (each document in windows of the model's context; each item's context with each choice), batched the same way.

The ratios say what the pipeline's machinery costs over the arithmetic.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from climb.core.io import write_json, write_parquet

WORDS = ["data", "model", "cluster", "token", "mixture", "proxy", "weight", "score", "train", "loss", "batch", "step", "layer", "sample", "domain", "corpus", "quality", "filter", "merge", "search", "round", "target", "metric", "value", "learning", "rate"]


def _synthetic_world(root: Path, n_docs: int, seed: int) -> dict:
    from climb.tokens.packed import tokenize_shard
    from climb.tokens.tokenizer import build_tokenizer

    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(80, 300))) + "." for _ in range(n_docs)]
    ids = [f"d{i}" for i in range(n_docs)]
    write_parquet(root / "corpus.parquet", pa.table({"id": ids, "text": texts}))
    write_parquet(root / "assign.parquet", pa.table({"id": ids, "cluster": pa.array([i % 2 for i in range(n_docs)],
                                                                                    pa.int32())}))
    write_json(root / "sc.json", {"n_superclusters": 2, "cluster_to_supercluster": {"0": 0, "1": 1},
                                  "superclusters": [{"id": 0, "name": "sc00", "clusters": [0]},
                                                    {"id": 1, "name": "sc01", "clusters": [1]}]})
    build_tokenizer([str(root / "corpus.parquet")], str(root / "tok"),
                    {"path": None, "vocab_size": 512, "min_frequency": 2, "sample_docs": n_docs,
                     "max_chars_per_doc": 4000}, seed)
    tokenize_shard(str(root / "corpus.parquet"), str(root / "assign.parquet"), str(root / "tok"),
                   str(root / "t.bin"), str(root / "t.idx.parquet"))
    with open(root / "heldout.jsonl", "w", encoding="utf-8") as fh:  # enough for 60 documents and 60 items
        for i, text in enumerate(texts[:160]):
            fh.write(json.dumps({"id": f"h{i}", "text": text[:1500], "topic": "bench"}) + "\n")
    return {"texts": texts}


def bare_training(settings: dict, vocab: int, steps: int, seed: int) -> float:
    """Tokens/s of a bare AdamW loop with the proxy's model and batch shapes."""
    import torch

    from climb.proxy.train import build_model

    model = build_model(settings, vocab, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=settings["lr"])
    gen = torch.Generator().manual_seed(seed)
    batch, micro, seq = settings["batch_size"], settings["micro_batch_size"], settings["seq_len"]
    data = [torch.randint(0, vocab, (batch, seq), generator=gen) for _ in range(steps)]
    t0 = time.perf_counter()
    for x in data:
        for m in range(batch // micro):
            chunk = x[m * micro : (m + 1) * micro]
            (model(input_ids=chunk, labels=chunk).loss / (batch // micro)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return steps * batch * seq / (time.perf_counter() - t0)


def scored_sequences(tok, texts: list[str], mc_items: list[dict], window: int) -> list[list[int]]:
    """The token sequences the two tasks score: each document (after an end-of-text token) in windows of the
    model's context, and each item's context followed by each of its choices."""
    pieces = []
    for text in texts:
        ids = [tok.eos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]
        pieces += [ids[i : i + window] for i in range(0, len(ids), window)]
    for item in mc_items:
        context = tok(item["context"], add_special_tokens=False)["input_ids"]
        for choice in item["choices"]:
            pieces.append((context + tok(choice, add_special_tokens=False)["input_ids"])[-window:])
    return pieces


def bare_forward(proxy_dir: str, texts: list[str], mc_items: list[dict], batch_size: int) -> tuple[float, int]:
    """Tokens/s of plain forward passes over the scored sequences, shortest first, in batches."""
    import torch
    from transformers import AutoModelForCausalLM

    from climb.tokens.tokenizer import load_tokenizer

    tok = load_tokenizer(proxy_dir)
    model = AutoModelForCausalLM.from_pretrained(proxy_dir).eval()
    pieces = sorted(scored_sequences(tok, texts, mc_items, model.config.max_position_embeddings), key=len)
    n_tokens = sum(len(p) for p in pieces)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(pieces), batch_size):
            group = pieces[i : i + batch_size]
            width = max(len(p) for p in group)
            x = torch.tensor([p + [tok.eos_token_id] * (width - len(p)) for p in group])
            torch.log_softmax(model(input_ids=x).logits.float(), dim=-1)
    return n_tokens / (time.perf_counter() - t0), n_tokens


def run(preset: str = "tiny", steps: int = 40, seed: int = 0, threads: int = 2) -> dict:
    import torch

    from climb.core.config import load_schema
    from climb.proxy.evaluate import build_heldout_tasks, evaluate_proxy
    from climb.proxy.train import train_proxy

    torch.set_num_threads(threads)
    settings = {"preset": preset, "model_overrides": {}, "init_from": None, "seq_len": 128,
                "max_position_embeddings": None, "batch_size": 16, "micro_batch_size": 16, "tokens": 16 * 128 * steps,
                "lr": 3e-3, "min_lr_ratio": 0.1, "weight_decay": 0.1, "betas": [0.9, 0.95], "grad_clip": 1.0,
                "schedule": "cosine", "warmup_fraction": 0.05, "decay_fraction": 0.2, "nproc": 1, "device": "auto",
                "checkpoint_every": 0}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _synthetic_world(root, 400, seed)
        write_json(root / "w.json", {"weights": {"0": 0.5, "1": 0.5}})
        train_proxy(str(root / "w.json"), [str(root / "t.bin")], [str(root / "t.idx.parquet")], str(root / "sc.json"),
                    [], str(root / "tok"), str(root / "proxy"), str(root / "training.json"), settings, seed, threads)
        training = json.loads((root / "training.json").read_text())
        schema = load_schema()["properties"]
        heldout = {**{k: v["default"] for k, v in schema["evaluation"]["properties"]["heldout"]["properties"].items()
                      if k not in ("carve", "validation_fraction")}, "topic": "bench"}
        build_heldout_tasks(str(root / "heldout.jsonl"), str(root / "bpb.jsonl"), str(root / "mc.jsonl"), heldout, seed)
        config = {"evaluation": {"include_paths": [], "data_files": {"climb_heldout_bpb": str(root / "bpb.jsonl"),
                                                                     "climb_heldout_mc": str(root / "mc.jsonl")},
                                 "batch_size": 32, "limit": None, "bootstrap_iters": 0, "device": "auto",
                                 "dtype": "float32", "heldout": heldout},
                  "targets": schema["targets"]["default"]}  # general: the bpb task, and the choice task at weight 0
        score = evaluate_proxy(str(root / "proxy"), "general", config, str(root / "score.json"), seed, threads)
        bpb_texts = [json.loads(line)["text"] for line in (root / "bpb.jsonl").read_text().splitlines()]
        mc_items = [json.loads(line) for line in (root / "mc.jsonl").read_text().splitlines()]
        forward_tps, n_tokens = bare_forward(str(root / "proxy"), bpb_texts, mc_items, 32)
        vocab = len(json.loads((root / "tok" / "tokenizer.json").read_text())["model"]["vocab"])
        bare_tps = bare_training(settings, vocab, steps, seed)
    result = {
        "preset": preset, "steps": steps, "threads": threads, "n_params": training["n_params"],
        "device": training["device"],
        "train_tokens_per_s": training["tokens_per_second"], "bare_train_tokens_per_s": round(bare_tps, 1),
        "train_overhead": round(bare_tps / training["tokens_per_second"], 3),
        "score_tokens": n_tokens, "score_seconds_lm_eval": score["seconds"],
        "score_tokens_per_s_lm_eval": round(n_tokens / score["seconds"], 1),
        "bare_forward_tokens_per_s": round(forward_tps, 1),
        "score_overhead": round(forward_tps / (n_tokens / score["seconds"]), 3),
    }
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    result = run(args.preset, args.steps, args.seed, args.threads)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
