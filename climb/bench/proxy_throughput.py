"""Throughput of proxy training and of lm-eval scoring, each against a bare PyTorch baseline.

``python -m climb.bench.proxy_throughput [--preset tiny] [--steps 40] [--out bench.json]`` builds the embedded default
in a temporary folder as ``make run`` does (config.yaml over the schema's defaults: its corpus and held-out documents,
its tokenizer, packed tokens; the documents split over two super-clusters, as the bench needs no clustering), trains an
embedded-default proxy on it for ``steps`` steps, then measures:

- training: ``train_proxy`` tokens/s (its own timer, after start-up) vs a bare loop with the same model, batch
  shapes, AdamW and step count on random token ids (no sampler, no schedule, no logging);
- scoring: ``evaluate_proxy`` (lm-eval, start-up included: tasks, model, requests) on the embedded default's target
  (held-out bits per byte on its topic's documents, and the four-way continuation-choice items) tokens/s vs bare
  ``model(input_ids)`` forward passes over the same token sequences (each document in windows of the model's
  context; each item's context with each choice), shortest first, in batches of the scoring's size (lm-eval
  sorts the choice requests so too, but batches a document's windows in the documents' order). Each scoring runs as
  a job of ``make run`` does: in a fresh process that starts where the warm interpreter's jobs start
  (:func:`climb.core.warm.preload`, done once per run for all jobs: imports, transformers' renaming table, the
  loaded objects frozen out of the garbage collector's view); so do the bare forward passes (the model's loading
  not counted). Best of ``repeats`` fresh processes each, the sides alternating. The scoring is lm-eval's ``evaluate`` with the
  pipeline's model class (:class:`climb.proxy.scoring_model.ProxyScoringLM`: lm-eval's ``HFLM``, its requests
  tokenized in one call and only the scored positions normalized).

The jobs run torch on the CPU with glibc keeping freed memory for reuse (:mod:`climb.compute.allocator`). The ratios
compare like with like: the bare loop and the bare forward passes run with the same setting. The bare passes also run
with glibc's default, as a bare script would (``bare_forward_default_*``), and so does a bare training loop in a
fresh process (``bare_train_default_tokens_per_s``): what the setting is worth.

The ratios say what the pipeline's machinery costs over the arithmetic.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from climb.bench.common import full_config
from climb.core.io import write_json, write_parquet


def _embedded_world(root: Path, config: dict) -> None:
    """The embedded default's corpus, held-out documents, tokenizer and packed tokens under ``root``."""
    import pyarrow.parquet as pq

    from climb.corpus.embedded_corpus import write_embedded_corpus
    from climb.tokens.packed import tokenize_shard
    from climb.tokens.tokenizer import build_tokenizer

    embedded, seed = config["input"]["embedded"], config["seed"]
    write_embedded_corpus([str(root / "corpus.jsonl")], str(root / "heldout.jsonl"), str(root / "manifest.json"),
                          embedded["docs_per_topic"], embedded["heldout_per_topic"], embedded["planted_per_kind"],
                          embedded["min_chars"], embedded["max_chars"], seed)
    rows = [json.loads(line) for line in (root / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    ids = [r["id"] for r in rows]
    write_parquet(root / "corpus.parquet", pa.table({"id": ids, "text": [r["text"] for r in rows]}))
    write_parquet(root / "assign.parquet", pa.table({"id": ids, "cluster": pa.array([i % 2 for i in range(len(ids))],
                                                                                    pa.int32())}))
    write_json(root / "sc.json", {"n_superclusters": 2, "cluster_to_supercluster": {"0": 0, "1": 1},
                                  "superclusters": [{"id": 0, "name": "sc00", "clusters": [0]},
                                                    {"id": 1, "name": "sc01", "clusters": [1]}]})
    build_tokenizer([str(root / "corpus.parquet")], str(root / "tok"), config["tokenizer"], seed)
    tokenize_shard(str(root / "corpus.parquet"), str(root / "assign.parquet"), str(root / "tok"),
                   str(root / "t.bin"), str(root / "t.idx.parquet"))
    assert pq.ParquetFile(root / "t.idx.parquet").metadata.num_rows == len(ids)


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
    """Seconds of plain forward passes over the scored sequences, shortest first, in batches, and their tokens."""
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
    return time.perf_counter() - t0, n_tokens


def fresh_job(spec_path: str) -> None:
    """One measurement in a process of its own, started where a job of ``make run`` starts: the warm interpreter's
    preload (:func:`climb.core.warm.preload`), then a scoring (``evaluate_proxy``, which times itself from its start
    to its scores), the bare forward passes or a bare training loop. ``spec_path``: JSON of the job, its arguments,
    the thread count, the allocator setting and where the result goes."""
    import torch

    from climb.compute.allocator import keep_freed_memory
    from climb.core.warm import preload
    from climb.proxy.evaluate import evaluate_proxy

    for _ in preload():
        pass
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    torch.set_num_threads(spec["threads"])
    if spec.get("keep_freed_memory"):  # as the jobs do (evaluate_proxy does it itself)
        keep_freed_memory()
    if spec["job"] == "score":
        seconds = evaluate_proxy(**spec["arguments"])["seconds"]
        result = {"seconds": seconds}
    elif spec["job"] == "train":
        result = {"tokens_per_s": bare_training(**spec["arguments"])}
    else:
        seconds, tokens = bare_forward(**spec["arguments"])
        result = {"seconds": seconds, "tokens": tokens}
    write_json(spec["result"], result)


def fresh_runs(job: str, arguments: dict, threads: int, repeats: int, folder: Path,
               keep_freed_memory: bool = True) -> list[dict]:
    """``repeats`` runs of :func:`fresh_job`, each in a new interpreter."""
    spec = {"job": job, "arguments": arguments, "threads": threads, "keep_freed_memory": keep_freed_memory,
            "result": str(folder / f"{job}.result.json")}
    write_json(folder / f"{job}.spec.json", spec)
    results = []
    for _ in range(repeats):
        proc = subprocess.run([sys.executable, "-c", "import sys; from climb.bench.proxy_throughput import fresh_job; "
                               "fresh_job(sys.argv[1])", str(folder / f"{job}.spec.json")], capture_output=True,
                              text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        if proc.returncode != 0:
            raise RuntimeError(f"the {job} job failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        results.append(json.loads(Path(spec["result"]).read_text(encoding="utf-8")))
    return results


def run(preset: str = "tiny", steps: int = 40, seed: int = 0, threads: int | None = None, repeats: int = 5) -> dict:
    """``threads``: of training, scoring and both baselines; by default the embedded default's jobs' (proxy.threads)."""
    import torch

    from climb.compute.allocator import keep_freed_memory
    from climb.proxy.evaluate import build_heldout_tasks
    from climb.proxy.train import train_proxy

    config = full_config(embedded_default=True)
    threads = threads or config["proxy"]["threads"]
    torch.set_num_threads(threads)
    keep_freed_memory()  # train_proxy would set it for this process; set before either side is timed
    per_step = config["proxy"]["batch_size"] * config["proxy"]["seq_len"]
    settings = {**config["proxy"], "preset": preset, "tokens": per_step * steps, "nproc": 1, "checkpoint_every": 0}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _embedded_world(root, config)
        write_json(root / "w.json", {"weights": {"0": 0.5, "1": 0.5}})
        train_proxy(str(root / "w.json"), [str(root / "t.bin")], [str(root / "t.idx.parquet")], str(root / "sc.json"),
                    [], str(root / "tok"), str(root / "proxy"), str(root / "training.json"), settings, seed, threads)
        training = json.loads((root / "training.json").read_text())
        heldout = config["evaluation"]["heldout"]
        build_heldout_tasks(str(root / "heldout.jsonl"), str(root / "bpb.jsonl"), str(root / "mc.jsonl"), heldout,
                            config["seed"])
        evaluation = {**config["evaluation"], "data_files": {"climb_heldout_bpb": str(root / "bpb.jsonl"),
                                                             "climb_heldout_mc": str(root / "mc.jsonl")}}
        arguments = {"proxy_dir": str(root / "proxy"), "target": "general", "seed": seed, "threads": threads,
                     "config": {"evaluation": evaluation, "targets": config["targets"]},
                     "out_path": str(root / "score.json")}
        bpb_texts = [json.loads(line)["text"] for line in (root / "bpb.jsonl").read_text().splitlines()]
        mc_items = [json.loads(line) for line in (root / "mc.jsonl").read_text().splitlines()]
        passes = {"proxy_dir": str(root / "proxy"), "texts": bpb_texts, "mc_items": mc_items,
                  "batch_size": evaluation["batch_size"]}
        lm_eval_seconds, forwards, forwards_default = [], [], []
        for _ in range(repeats):  # the sides alternate: a change of the machine's load during the item falls on both
            lm_eval_seconds += [r["seconds"] for r in fresh_runs("score", arguments, threads, 1, root)]
            forwards += fresh_runs("forward", passes, threads, 1, root)
            forwards_default += fresh_runs("forward", passes, threads, 1, root, keep_freed_memory=False)
        n_tokens = forwards[0]["tokens"]
        forward_seconds = [r["seconds"] for r in forwards]
        forward_default_seconds = [r["seconds"] for r in forwards_default]
        vocab = len(json.loads((root / "tok" / "tokenizer.json").read_text())["model"]["vocab"])
        bare_tps = bare_training(settings, vocab, steps, seed)
        bare_default_tps = fresh_runs("train", {"settings": settings, "vocab": vocab, "steps": steps, "seed": seed},
                                      threads, 1, root, keep_freed_memory=False)[0]["tokens_per_s"]
    score_seconds, forward_tps = min(lm_eval_seconds), n_tokens / min(forward_seconds)
    result = {
        "preset": preset, "steps": steps, "threads": threads, "n_params": training["n_params"],
        "device": training["device"], "vocab": vocab, "bpb_documents": len(bpb_texts), "mc_items": len(mc_items),
        "train_tokens_per_s": training["tokens_per_second"], "bare_train_tokens_per_s": round(bare_tps, 1),
        "train_overhead": round(bare_tps / training["tokens_per_second"], 3),
        "bare_train_default_tokens_per_s": round(bare_default_tps, 1),
        "score_tokens": n_tokens, "score_repeats": repeats, "score_seconds_lm_eval": score_seconds,
        "score_seconds_lm_eval_each": lm_eval_seconds,
        "score_tokens_per_s_lm_eval": round(n_tokens / score_seconds, 1),
        "bare_forward_tokens_per_s": round(forward_tps, 1),
        "bare_forward_seconds_each": [round(s, 3) for s in forward_seconds],
        "score_overhead": round(forward_tps / (n_tokens / score_seconds), 3),
        "bare_forward_default_tokens_per_s": round(n_tokens / min(forward_default_seconds), 1),
        "bare_forward_default_seconds_each": [round(s, 3) for s in forward_default_seconds],
    }
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=None, help="default: the embedded default's proxy.threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="scoring jobs and bare forward runs; the best counts")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    result = run(args.preset, args.steps, args.seed, args.threads, args.repeats)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
