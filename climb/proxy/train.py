"""Train one proxy language model on one mixture of super-clusters.

Data: every training sequence is drawn from one super-cluster, chosen with probability equal to its mixture
weight, starting at a uniformly random token position of that super-cluster's token stream (its documents,
EOS-separated, in a seeded order). The batch of step ``s`` is a pure function of (seed, s, weights), so a
resumed job, a job with more processes and a job on a GPU all see the same data. Every proxy of a search uses
the same seed: the same initial weights and the same random numbers for sampling (common random numbers),
so score differences between proxies come from their mixtures, not from the seed.

Model: a ``transformers`` Llama-style causal LM from a preset (``tiny`` for the embedded default; ``62m``,
``132m``, ``350m`` close to the paper's proxies), or continued from a pretrained checkpoint. AdamW with
linear warm-up and cosine or warmup-stable-decay (WSD) schedule, gradient clipping, bf16 autocast on CUDA.
Several processes run through ``torchrun`` (NCCL on GPUs, gloo on CPU) with DistributedDataParallel.
Checkpoints every N steps go to ``{proxy}.ckpt/`` beside the output (not an output, so Snakemake keeps it
when a job is killed); a restarted job resumes from it and deletes it once the proxy is saved.

Domain-weight hook (DoReMi, :mod:`climb.search.doremi`): with ``doremi`` in the job's arguments (a trained reference
proxy, a step size and a smoothing), every step first scores its batch without gradients — the per-token losses
of this proxy and of the reference — and updates the Group DRO domain weights from the clipped excess losses;
the step's loss is then the per-token loss weighted by its domain's new weight, normalised over the batch
(DoReMi's order: update, then the reweighted loss). The batches are the mixture's as usual; ``training.json``
gets a ``doremi`` record with the weights after every step and their average.

A non-finite training loss (NaN or inf: the proxy diverged) is checked every step, before the optimizer
step. ``proxy.on_nonfinite_loss: fail`` (the default) stops the job with an error naming the mixture folder
and the step. ``skip`` records the mixture as failed instead: ``training.json`` (and the ``proxy`` folder, which
then holds only that file) has ``status: failed`` and ``failed: {step, loss, lr, reason, mixture}``; the
evaluation writes a failed score without running lm-eval, and the search leaves the mixture out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from climb.compute.allocator import keep_freed_memory
from climb.core.config import section_keys
from climb.core.io import atomic_path, write_json
from climb.search.mixture_file import read_mixture_weights
from climb.superclusters.superclusters_file import read_superclusters
from climb.tokens.packed import (
    TokenShard,
    open_shard,
    read_filtered_ids,
    usable_rows,
)

log = logging.getLogger(__name__)

# Llama-style presets. Parameter counts are for a 32k vocabulary; the embedding follows the tokenizer.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
             "intermediate_size": 256, "tie_word_embeddings": True},
    "small": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
              "intermediate_size": 512, "tie_word_embeddings": True},
    "62m": {"hidden_size": 512, "num_hidden_layers": 12, "num_attention_heads": 8, "num_key_value_heads": 8,
            "intermediate_size": 2048, "tie_word_embeddings": True},
    "132m": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "num_key_value_heads": 12,
             "intermediate_size": 2048, "tie_word_embeddings": False},
    "350m": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "num_key_value_heads": 16,
             "intermediate_size": 2816, "tie_word_embeddings": True},
}


# Settings that may change between a killed job and its rerun without invalidating the checkpoint: the runtime keys
# of `proxy` (how the job runs; climb/schemas/config.schema.yaml), and what to do should the loss diverge later.
RESUMABLE_CHANGES = (*section_keys("proxy", "runtime"), "on_nonfinite_loss")
NONFINITE_POLICIES = ("fail", "skip")


class ProxyError(ValueError):
    """A mixture or proxy setting that cannot be trained."""


class DivergedError(ProxyError):
    """The training loss became NaN or inf (``proxy.on_nonfinite_loss: fail``)."""


def mixture_folder(out_dir: str | os.PathLike) -> str:
    """The mixture folder of a proxy output (``results/search/pool/mix3`` for ``.../mix3/proxy``)."""
    return str(Path(os.fspath(out_dir).rstrip("/")).parent)


def read_weights(path: str | os.PathLike, known: list[int]) -> dict[int, float]:
    """The super-clusters a proxy trains on and their weights, as the mixture file gives them (the weights > 0)."""
    return {sc: w for sc, w in read_mixture_weights(path, known).items() if w > 0}


@dataclass
class _Domain:
    shard: np.ndarray  # int32, shard index of each document, in the domain's seeded order
    start: np.ndarray  # int64, token offset in that shard
    length: np.ndarray  # int64
    cum: np.ndarray  # int64, cumulative lengths
    total: int


class MixtureSampler:
    """Seeded training sequences from the packed token shards, by super-cluster weight."""

    def __init__(self, bin_paths: list[str], idx_paths: list[str], superclusters_path: str, filter_paths: list[str],
                 weights: dict[int, float], seq_len: int, seed: int):
        if len(bin_paths) != len(idx_paths):
            raise ProxyError("token files and index files differ in number")
        cluster_to_sc = read_superclusters(superclusters_path).cluster_to_sc
        filtered = read_filtered_ids(filter_paths)
        self.shards: list[TokenShard] = [open_shard(b, i) for b, i in zip(bin_paths, idx_paths, strict=True)]
        self.ids = list(weights)
        self.probs = np.array([weights[s] for s in self.ids], dtype=np.float64)
        self.probs /= self.probs.sum()
        self.seq_len = seq_len
        self.seed = seed
        parts: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {s: [] for s in self.ids}
        for k, shard in enumerate(self.shards):
            sc, keep = usable_rows(shard.index, cluster_to_sc, filtered)
            offset = shard.index.column("offset").to_numpy()
            length = shard.index.column("length").to_numpy().astype(np.int64)
            for s in self.ids:
                rows = np.flatnonzero(keep & (sc == s))
                parts[s].append((np.full(len(rows), k, np.int32), offset[rows], length[rows]))
        self.domains: list[_Domain] = []
        for s in self.ids:
            shard_ix = np.concatenate([p[0] for p in parts[s]])
            start = np.concatenate([p[1] for p in parts[s]])
            length = np.concatenate([p[2] for p in parts[s]])
            if length.sum() == 0:
                raise ProxyError(f"super-cluster {s} has weight {weights[s]} but no tokens left after filters")
            order = np.random.default_rng([seed, 1, s]).permutation(len(length))
            shard_ix, start, length = shard_ix[order], start[order], length[order]
            cum = np.cumsum(length)
            self.domains.append(_Domain(shard_ix, start, length, cum, int(cum[-1])))

    def _read(self, d: _Domain, pos: int, n: int) -> np.ndarray:
        out = np.empty(n, dtype=np.int64)
        filled = 0
        while filled < n:
            i = int(np.searchsorted(d.cum, pos, side="right"))
            within = pos - (int(d.cum[i]) - int(d.length[i]))
            take = min(int(d.length[i]) - within, n - filled)
            begin = int(d.start[i]) + within
            out[filled : filled + take] = self.shards[d.shard[i]].tokens[begin : begin + take]
            filled += take
            pos = (pos + take) % d.total
        return out

    def batch(self, step: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` sequences of global step ``step`` (int64, n x seq_len) and the super-cluster of each."""
        rng = np.random.default_rng([self.seed, 2, step])
        choice = rng.choice(len(self.ids), size=n, p=self.probs)
        seqs = np.empty((n, self.seq_len), dtype=np.int64)
        for j, c in enumerate(choice):
            d = self.domains[c]
            seqs[j] = self._read(d, int(rng.integers(0, d.total)), self.seq_len)
        return seqs, np.array(self.ids)[choice]


def lr_at(step: int, n_steps: int, settings: dict) -> float:
    """Learning rate of ``step`` (0-based): linear warm-up, then cosine or warmup-stable-decay to ``min_lr``."""
    peak = settings["lr"]
    low = peak * settings["min_lr_ratio"]
    warmup = max(1, round(settings["warmup_fraction"] * n_steps))
    if step < warmup:
        return peak * (step + 1) / warmup
    if settings["schedule"] == "cosine":
        progress = (step - warmup) / max(1, n_steps - warmup)
        return low + 0.5 * (peak - low) * (1 + math.cos(math.pi * min(1.0, progress)))
    decay = max(1, round(settings["decay_fraction"] * n_steps))
    decay_start = n_steps - decay
    if step < decay_start:
        return peak
    return peak + (low - peak) * (step - decay_start + 1) / decay


def build_model(settings: dict, vocab_size: int, seed: int) -> Any:
    """A fresh causal LM from the preset (seeded init), or the pretrained checkpoint in ``settings['init_from']``."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if settings.get("init_from"):
        model = AutoModelForCausalLM.from_pretrained(settings["init_from"], local_files_only=True, dtype=torch.float32)
        if model.config.vocab_size < vocab_size:
            raise ProxyError(f"proxy.init_from {settings['init_from']}: vocabulary {model.config.vocab_size} is smaller "
                             f"than the tokenizer's {vocab_size}; set tokenizer.path to the checkpoint's tokenizer")
        return model
    if settings["preset"] not in PRESETS:
        raise ProxyError(f"proxy.preset {settings['preset']!r} unknown; choose one of {sorted(PRESETS)}")
    fields = {**PRESETS[settings["preset"]], **settings.get("model_overrides", {})}
    positions = max(settings["seq_len"], settings.get("max_position_embeddings") or 0)
    config = LlamaConfig(vocab_size=vocab_size, max_position_embeddings=positions, **fields)
    return LlamaForCausalLM(config)


def _fingerprint(args: dict) -> str:
    # The data do not depend on the number of processes, so a job may resume with a different count.
    keys = ("weights", "settings", "seed", "idx_paths", "superclusters_path", "filter_paths")
    if args.get("doremi"):  # only then, so that checkpoints of ordinary proxies stay valid
        keys = (*keys, "doremi")
    blob = json.dumps({k: args.get(k) for k in keys} | {"settings": {k: v for k, v in args["settings"].items()
                                                                     if k not in RESUMABLE_CHANGES}}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def checkpoint_dir(out_dir: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(out_dir).rstrip('/')}.ckpt")


def _worker(args: dict) -> None:
    """One training process (rank): runs alone, or as one of ``torchrun``'s processes."""
    import torch
    import torch.distributed as dist

    from climb.tokens.tokenizer import load_tokenizer

    settings = args["settings"]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    from climb.compute.device import resolve_device

    use_cuda = resolve_device(settings["device"], "proxy.device") == "cuda"
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, args["threads"] // world))
        keep_freed_memory()  # each step's 32 MiB logits would otherwise be mapped and zero-filled afresh
    if world > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    try:
        _train(args, settings, world, rank, device, use_cuda, load_tokenizer(args["tokenizer_dir"]))
    finally:
        if world > 1:
            dist.destroy_process_group()


def _train(args: dict, settings: dict, world: int, rank: int, device: Any, use_cuda: bool, tokenizer: Any) -> None:
    import torch
    import torch.distributed as dist

    seq_len, batch, micro = settings["seq_len"], settings["batch_size"], settings["micro_batch_size"]
    if batch % world or (batch // world) % micro:
        raise ProxyError(f"proxy.batch_size {batch} must be a multiple of micro_batch_size {micro} x {world} processes")
    policy = settings.get("on_nonfinite_loss", "fail")
    if policy not in NONFINITE_POLICIES:
        raise ProxyError(f"proxy.on_nonfinite_loss: {policy!r} (choose one of {list(NONFINITE_POLICIES)})")
    per_rank = batch // world
    n_micro = per_rank // micro
    n_steps = max(1, settings["tokens"] // (batch * seq_len))
    weights = {int(k): v for k, v in args["weights"].items()}
    sampler = MixtureSampler(args["bin_paths"], args["idx_paths"], args["superclusters_path"], args["filter_paths"],
                             weights, seq_len, args["seed"])
    model = build_model(settings, len(tokenizer), args["seed"]).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings["weight_decay"]},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=settings["lr"], betas=tuple(settings["betas"]), eps=1e-8)
    history: dict[str, list] = {"step": [], "loss": [], "lr": []}
    seen = {str(s): 0 for s in weights}
    start = 0
    dro = _DomainWeightHook(args["doremi"], sampler.ids, device, use_cuda) if args.get("doremi") else None
    ckpt = checkpoint_dir(args["out_dir"])
    state_file = ckpt / "state.pt"
    fingerprint = _fingerprint(args)
    if state_file.exists():
        state = torch.load(state_file, map_location=device, weights_only=True)
        if state["fingerprint"] == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start, history, seen = state["step"], state["history"], state["seen"]
            if dro is not None:
                dro.load(state["doremi"])
            log.info("resumed from checkpoint %s at step %d of %d", state_file, start, n_steps)
        else:
            log.warning("checkpoint %s belongs to other settings or weights; starting from scratch", state_file)
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if use_cuda else None) \
        if world > 1 else model
    log.info("proxy: %s parameters, %d steps of %d x %d tokens, %d process(es), device %s",
             f"{n_params:,}", n_steps, batch, seq_len, world, device)
    t0 = time.perf_counter()
    model.train()
    failed: dict[str, Any] | None = None
    for step in range(start, n_steps):
        lr = lr_at(step, n_steps, settings)
        for group in optimizer.param_groups:
            group["lr"] = lr
        seqs, domains = sampler.batch(step, batch)
        for s, c in zip(*np.unique(domains, return_counts=True), strict=True):
            seen[str(int(s))] += int(c) * seq_len
        local = torch.from_numpy(seqs[rank * per_rank : (rank + 1) * per_rank]).to(device)
        local_domains = domains[rank * per_rank : (rank + 1) * per_rank]
        if dro is not None:  # score the batch, update the domain weights, then the reweighted loss below
            dro.update(model, local, local_domains, domains, micro, world)
        total = torch.zeros((), device=device)
        for m in range(n_micro):
            x = local[m * micro : (m + 1) * micro]
            sync = m == n_micro - 1 or world == 1
            ctx = ddp.no_sync() if not sync else _nullcontext()
            with ctx, torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_cuda):
                if dro is None:
                    loss = ddp(input_ids=x, labels=x).loss / n_micro
                else:
                    loss = dro.loss(ddp, x, local_domains[m * micro : (m + 1) * micro], world)
            loss.backward()
            total += loss.detach().float()
        if world > 1:  # every rank sees the same mean loss, so every rank takes the same decision below
            dist.all_reduce(total)
            total /= world
        if not math.isfinite(float(total)):
            failed = {"step": step + 1, "loss": str(float(total)), "lr": lr, "mixture": mixture_folder(args["out_dir"]),
                      "reason": f"training loss is {float(total)} at step {step + 1} of {n_steps} (lr {lr:.3g})"}
            if policy == "fail":
                raise DivergedError(
                    f"{failed['mixture']}: {failed['reason']}; the proxy diverged. Lower proxy.lr, raise "
                    "proxy.warmup_fraction or set proxy.grad_clip, or set proxy.on_nonfinite_loss: skip to record this "
                    "mixture as failed and let the search go on without it")
            log.error("%s: %s; recorded as failed (proxy.on_nonfinite_loss: skip)", failed["mixture"], failed["reason"])
            break
        if settings["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        history["step"].append(step + 1)
        history["loss"].append(float(total))
        history["lr"].append(lr)
        if step % max(1, n_steps // 20) == 0 or step == n_steps - 1:
            log.info("step %d/%d loss %.4f lr %.2e", step + 1, n_steps, float(total), lr)
        every = settings["checkpoint_every"]
        if every and (step + 1) % every == 0 and step + 1 < n_steps:
            if rank == 0:
                ckpt.mkdir(parents=True, exist_ok=True)
                with atomic_path(state_file) as tmp:
                    torch.save({"fingerprint": fingerprint, "step": step + 1, "model": model.state_dict(),
                                "optimizer": optimizer.state_dict(), "history": history, "seen": seen,
                                "doremi": dro.state() if dro is not None else None}, tmp)
            if world > 1:
                dist.barrier()
    seconds = time.perf_counter() - t0
    if rank == 0:
        trained = (n_steps if failed is None else failed["step"] - 1) - start
        report = {
            **history,
            "n_steps": n_steps, "tokens_per_step": batch * seq_len, "tokens": n_steps * batch * seq_len,
            "tokens_per_supercluster": seen, "weights": {str(k): v for k, v in weights.items()},
            "n_params": n_params, "world_size": world, "device": str(device.type), "resumed_at_step": start,
            "seconds": round(seconds, 3),
            "tokens_per_second": round(trained * batch * seq_len / seconds, 1) if seconds > 0 else None,
            "final_loss": history["loss"][-1] if history["loss"] else None,
            "status": "ok" if failed is None else "failed",
        }
        if failed is not None:
            report["failed"] = failed
        if dro is not None:
            report["doremi"] = dro.report()
        if Path(args["out_dir"]).is_dir():  # a folder cannot be renamed over a non-empty one
            shutil.rmtree(args["out_dir"])
        with atomic_path(args["out_dir"]) as tmp:
            if failed is None:
                model.save_pretrained(str(tmp), safe_serialization=True)
                tokenizer.save_pretrained(str(tmp))
            else:  # a diverged model is not worth its disk space: the folder holds only training.json
                tmp.mkdir()
            with open(tmp / "training.json", "w", encoding="utf-8") as fh:
                json.dump(report, fh, indent=2, sort_keys=True)
        write_json(args["curve_path"], report)
        shutil.rmtree(ckpt, ignore_errors=True)
        if failed is None:
            log.info("proxy saved to %s (%.1f s, %s tokens/s)", args["out_dir"], seconds, report["tokens_per_second"])
    if world > 1:
        dist.barrier()


class _DomainWeightHook:
    """DoReMi's Group DRO on the proxy's batches (see the module docstring and :mod:`climb.search.doremi`)."""

    def __init__(self, spec: dict, domain_ids: list[int], device: Any, use_cuda: bool):
        import torch
        from transformers import AutoModelForCausalLM

        from climb.search.doremi import DomainWeights

        self.spec = spec
        self.ids = [int(i) for i in domain_ids]
        self.index = {sc: k for k, sc in enumerate(self.ids)}
        self.device, self.use_cuda = device, use_cuda
        self.reference = AutoModelForCausalLM.from_pretrained(spec["reference"], local_files_only=True,
                                                              dtype=torch.float32).to(device)
        self.reference.eval()
        self.state_ = DomainWeights.uniform(len(self.ids))  # DoReMi starts the DRO weights at uniform
        self.normalizer = 1.0

    def _pertoken(self, model: Any, x: Any) -> Any:
        import torch.nn.functional as F

        logits = model(input_ids=x).logits[:, :-1].float()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                               reduction="none").view(x.shape[0], -1)

    def update(self, model: Any, local: Any, local_domains: np.ndarray, batch_domains: np.ndarray, micro: int,
               world: int) -> None:
        """Score this step's batch without gradients (this proxy and the reference), then one Group DRO update."""
        import torch
        import torch.distributed as dist

        from climb.search.doremi import group_dro_update

        k = len(self.ids)
        excess = torch.zeros(k, dtype=torch.float64, device=self.device)
        tokens = torch.zeros(k, dtype=torch.float64, device=self.device)
        dom = torch.from_numpy(np.array([self.index[int(s)] for s in local_domains], dtype=np.int64)).to(self.device)
        with torch.no_grad(), torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_cuda):
            for m in range(0, len(local), micro):
                x = local[m : m + micro]
                diff = (self._pertoken(model, x) - self._pertoken(self.reference, x)).clamp(min=0)
                excess.index_add_(0, dom[m : m + micro], diff.sum(dim=1).double())
                tokens.index_add_(0, dom[m : m + micro],
                                  torch.full((len(x),), float(diff.shape[1]), dtype=torch.float64, device=self.device))
        if world > 1:
            dist.all_reduce(excess)
            dist.all_reduce(tokens)
        self.state_ = group_dro_update(self.state_, excess.cpu().numpy(), tokens.cpu().numpy(),
                                       self.spec["step_size"], self.spec["smoothing"])
        # the loss's normaliser: the new weights summed over the whole batch's sequences (every rank's)
        self.normalizer = float(sum(self.state_.weights[self.index[int(s)]] for s in batch_domains))

    def loss(self, ddp: Any, x: Any, domains: np.ndarray, world: int) -> Any:
        """Per-token loss weighted by its domain's weight, normalised over the batch (DDP averages over ranks)."""
        import torch

        w = torch.tensor([self.state_.weights[self.index[int(s)]] for s in domains], dtype=torch.float32,
                         device=self.device)
        return (self._pertoken(ddp, x).mean(dim=1) * w).sum() * world / self.normalizer

    def state(self) -> dict:
        return {**self.state_.state(), "normalizer": self.normalizer}

    def load(self, state: dict) -> None:
        from climb.search.doremi import DomainWeights

        self.state_ = DomainWeights.from_state(state)
        self.normalizer = float(state["normalizer"])

    def report(self) -> dict:
        s = self.state_
        return {"domains": self.ids, "reference": self.spec["reference"], "step_size": self.spec["step_size"],
                "smoothing": self.spec["smoothing"], "init": "uniform", "updates": s.updates,
                "weights": s.weights.tolist(), "average": s.average.tolist(), "scores": s.scores.tolist(),
                "history": s.history}


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def train_proxy(weights_path: str, bin_paths: list[str], idx_paths: list[str], superclusters_path: str,
                filter_paths: list[str], tokenizer_dir: str, out_dir: str, curve_path: str, settings: dict,
                seed: int, threads: int = 1, doremi: dict | None = None) -> None:
    """Train the proxy of one mixture; several processes through ``torchrun`` when ``settings['nproc'] > 1``.

    ``doremi``: ``{"reference": <trained reference proxy folder>, "step_size": float, "smoothing": float}`` turns on
    the domain-weight hook (DoReMi's Group DRO over the mixture's super-clusters)."""
    weights = read_weights(weights_path, read_superclusters(superclusters_path).ids)
    args = {
        "weights": {str(k): v for k, v in weights.items()}, "bin_paths": list(bin_paths), "idx_paths": list(idx_paths),
        "superclusters_path": superclusters_path, "filter_paths": list(filter_paths), "tokenizer_dir": tokenizer_dir,
        "out_dir": out_dir, "curve_path": curve_path, "settings": settings, "seed": seed, "threads": threads,
    }
    if doremi is not None:
        args["doremi"] = {"reference": str(doremi["reference"]), "step_size": float(doremi["step_size"]),
                          "smoothing": float(doremi["smoothing"])}
    nproc = settings["nproc"]
    if nproc <= 1:
        _worker(args)
        return
    Path(curve_path).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", prefix=".torchrun-args-", suffix=".json", dir=Path(curve_path).parent,
                                     delete=False) as fh:
        json.dump(args, fh)
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, threads // nproc))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "climb.proxy.train", fh.name]
    log.info("launching %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, env=env)
    finally:
        os.unlink(fh.name)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun exited with {proc.returncode} while training {out_dir}")


def main(argv: list[str]) -> None:
    """``python -m climb.proxy.train ARGS.json``: one process of a ``torchrun`` launch."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s rank{os.environ.get('RANK', '0')} %(levelname)s %(message)s")
    with open(argv[0], encoding="utf-8") as fh:
        _worker(json.load(fh))


if __name__ == "__main__":
    main(sys.argv[1:])
