"""The pipeline's tokenizer: a given Hugging Face tokenizer directory, or a byte-level BPE trained here.

The tokenizer is fixed before pruning (it reads the ingested corpus, not the kept clusters), so changing a
pruning threshold never changes it and never re-tokenizes anything. Either way it is saved to one folder
with ``save_pretrained``, loadable by ``AutoTokenizer`` and therefore by lm-eval's ``hf`` model.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from climb.core.io import atomic_path

log = logging.getLogger(__name__)

EOS = "<|endoftext|>"


class TokenizerError(ValueError):
    """The configured tokenizer cannot be built or used."""


def sample_texts(corpus_paths: list[str], n_docs: int, seed: int, max_chars: int) -> list[str]:
    """A seeded sample of ``n_docs`` documents drawn uniformly from all corpus shards (texts cut to ``max_chars``)."""
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in corpus_paths]
    total = sum(sizes)
    if total == 0:
        raise TokenizerError(f"no documents in {corpus_paths} to train the tokenizer on")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(total, size=min(n_docs, total), replace=False))
    texts: list[str] = []
    start = 0
    for path, size in zip(corpus_paths, sizes, strict=True):
        rows = chosen[(chosen >= start) & (chosen < start + size)] - start
        start += size
        if len(rows) == 0:
            continue
        column = pq.read_table(path, columns=["text"]).column("text")
        texts.extend(t[:max_chars] for t in column.take(rows).to_pylist())
    return texts


def train_bpe(texts: list[str], vocab_size: int, min_frequency: int = 2) -> Any:
    """Train a byte-level BPE on ``texts``; returns a ``PreTrainedTokenizerFast`` with ``<|endoftext|>`` as EOS/BOS/pad."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )

    def batches() -> Iterator[list[str]]:
        for i in range(0, len(texts), 1000):
            yield texts[i : i + 1000]

    tok.train_from_iterator(batches(), trainer=trainer, length=len(texts))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=EOS, pad_token=EOS)


def load_tokenizer(path: str | os.PathLike) -> Any:
    """``AutoTokenizer`` from a local folder (offline); it must define an EOS token."""
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise TokenizerError(f"tokenizer folder {path} does not exist")
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tok.eos_token_id is None:
        raise TokenizerError(f"tokenizer {path} has no EOS token; documents are EOS-separated, so one is required")
    return tok


def build_tokenizer(corpus_paths: list[str], out_dir: str, settings: dict, seed: int) -> None:
    """Write the pipeline tokenizer to ``out_dir``: a copy of ``settings['path']`` or a BPE trained on a corpus sample."""
    with atomic_path(out_dir) as tmp:
        if settings.get("path"):
            tok = load_tokenizer(settings["path"])
            log.info("using tokenizer %s (vocabulary %d)", settings["path"], len(tok))
        else:
            texts = sample_texts(corpus_paths, settings["sample_docs"], seed, settings["max_chars_per_doc"])
            log.info("training byte-level BPE (vocabulary %d) on %d sampled documents", settings["vocab_size"], len(texts))
            tok = train_bpe(texts, settings["vocab_size"], settings["min_frequency"])
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        tok.save_pretrained(str(tmp))
        # A check that the saved folder loads as the rest of the pipeline will load it.
        loaded = load_tokenizer(tmp)
        log.info("tokenizer saved: vocabulary %d, EOS id %d", len(loaded), loaded.eos_token_id)


def copy_tokenizer(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Copy the tokenizer folder's files into ``dest`` (so a proxy folder is self-contained)."""
    Path(dest).mkdir(parents=True, exist_ok=True)
    for f in Path(src).iterdir():
        if f.is_file():
            shutil.copy2(f, Path(dest) / f.name)
