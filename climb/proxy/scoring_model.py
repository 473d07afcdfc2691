"""The lm-eval model that scores a proxy: lm-eval's ``HFLM``, with a call's strings tokenized at once and only the
scored positions normalized.

lm-eval builds the requests from its tasks, and computes and aggregates the metrics; this class is the model side of
its API, as every lm-eval model is. It differs from ``HFLM`` in two places, with the same results (to the last bit on
the CPU):

- **Tokenizing.** ``HFLM`` encodes each string by itself: a multiple-choice item's context once per choice, and once
  more with each choice appended, and each bits-per-byte document, each a separate call of the tokenizer. Here
  :meth:`ProxyScoringLM.loglikelihood` and :meth:`ProxyScoringLM.loglikelihood_rolling` first encode every string the
  call will encode, each distinct one once, in one call of the tokenizer per special-token setting; ``tok_encode``
  then hands out those ids. They are the same ids (the same tokenizer, the same setting).
- **Normalizing.** ``HFLM`` takes the log-softmax over the vocabulary at every position of a padded batch, then keeps
  each request's continuation. A multiple-choice request's context and the batch's padding are most of those
  positions. :meth:`ProxyScoringLM._loglikelihood_tokens` batches the same requests the same way (lm-eval's
  ``Collator``: longest first, one forward pass for continuations that share a context) and runs the same forward
  passes, then normalizes only the continuations' positions. The log-softmax of a position depends on that
  position's logits alone: on the CPU the values are the same bytes (tested against ``HFLM``), and so are the greedy
  matches and the sums, computed as ``HFLM`` computes them. Whether a continuation is the greedy one is first ruled
  out by maxima, ~10x cheaper than the argmax over the vocabulary that ``HFLM`` takes at every position.

Rolling windows (bits-per-byte tasks) are batched as lm-eval batches them, in the documents' order: sorting them by
length would pad less, but changes the batch each window is computed in, and with it the last bits of a score on
the CPU, which the search's predictor then amplifies into other proposals.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import Collator, _add_special_kwargs, has_bos_prefix
from lm_eval.models.utils_hf import pad_and_concat
from tqdm import tqdm

log = logging.getLogger(__name__)

Request = tuple[tuple[str, str] | None, list[int], list[int]]


def _longest_first(request: Request) -> tuple[int, tuple[int, ...]]:
    """lm-eval's order of loglikelihood requests: longest context + continuation first, then by tokens."""
    tokens = request[1] + request[2]
    return -len(tokens), tuple(tokens)


def _shared_context(request: Request) -> list[int]:
    """lm-eval's key of requests answered by one forward pass: context + continuation without its last token."""
    return request[-2] + request[-1][:-1]


def _is_greedy(scored: torch.Tensor, tokens: torch.Tensor) -> bool:
    """Whether ``tokens`` ([1, n]) are the argmax of ``scored``'s last n positions ([1, >= n, vocab]), as
    ``HFLM`` decides it, with ``argmax`` over the vocabulary only where no higher log-probability rules it out (a
    maximum is ~10x cheaper than an argmax on the CPU)."""
    rows = scored[:, -tokens.shape[1]:]
    if bool((torch.gather(rows, 2, tokens.unsqueeze(-1)).squeeze(-1) < rows.amax(dim=-1)).any()):
        return False  # at some position another token has a higher log-probability: it, not this one, is the argmax
    return bool((rows.argmax(dim=-1) == tokens).all())  # ties and NaNs: the first index of the maximum, as HFLM


class ProxyScoringLM(HFLM):
    """``HFLM`` with a call's strings tokenized at once and only the scored positions normalized (see the module's
    text)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._encoded: dict[str, list[int]] = {}

    def _encode_all(self, strings: list[str]) -> None:
        """Encode the distinct ``strings`` as ``tok_encode(string)`` would, in one tokenizer call per special-token
        setting, and keep them for :meth:`tok_encode`."""
        bos = self.tokenizer.decode(self.prefix_token_id)
        default = _add_special_kwargs(None, self.add_bos_token).get("add_special_tokens")
        groups: dict[bool | None, list[str]] = {}
        for string in dict.fromkeys(strings):
            groups.setdefault(False if has_bos_prefix(string, bos) else default, []).append(string)
        for setting, group in groups.items():
            kwargs = {} if setting is None else {"add_special_tokens": setting}
            self._encoded.update(zip(group, self.tokenizer(group, **kwargs)["input_ids"], strict=True))

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, left_truncate_len: int | None = None,
                   **kwargs: Any) -> list[int]:
        if add_special_tokens is None and not left_truncate_len and not kwargs and string in self._encoded:
            return list(self._encoded[string])
        return super().tok_encode(string, add_special_tokens=add_special_tokens, left_truncate_len=left_truncate_len,
                                  **kwargs)

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        strings = []
        for context, continuation in (req.args for req in requests):
            if context:  # what _encode_pair encodes: trailing spaces of the context move to the continuation
                stripped = context.rstrip()
                strings += [stripped, stripped + context[len(stripped):] + continuation]
        self._encode_all(strings)
        try:
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        finally:
            self._encoded.clear()

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        self._encode_all([req.args[0] for req in requests])  # each document, as tok_encode(document) encodes it
        try:
            return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)
        finally:
            self._encoded.clear()

    def _loglikelihood_tokens(self, requests: list[Request], disable_tqdm: bool = False,
                              override_bs: int | None = None) -> list[tuple[float, bool]]:
        """``HFLM._loglikelihood_tokens`` for a decoder-only model at a fixed batch size, with the log-softmax taken
        over the continuations' positions only (see the module's text); lm-eval's own method otherwise."""
        if self.backend != "causal" or self.batch_size == "auto":
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        ordered = Collator(requests, sort_fn=_longest_first, group_by="contexts" if self.logits_cache else None,
                           group_fn=_shared_context)
        results: list[tuple[float, bool]] = []
        progress = tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0,
                        desc="Running loglikelihood requests")
        for batch in ordered.get_batched(n=self.batch_size):
            inputs = []
            for _, context, continuation in batch:
                assert context and continuation and len(continuation) <= self.max_length
                if len(context) + len(continuation) > self.max_length + 1:
                    log.warning("context (%d tokens) and continuation (%d) exceed the model's maximum length (%d): "
                                "the context is cut from the left", len(context), len(continuation), self.max_length)
                inputs.append((context + continuation)[-(self.max_length + 1):][:-1])
            width = max(map(len, inputs))
            logits = self._model_call(pad_and_concat(
                width, [torch.tensor(ids, dtype=torch.long, device=self.device) for ids in inputs]))
            for i, (request_str, context_tokens, continuation_tokens) in enumerate(batch):
                # the continuation's positions: the last len(continuation) of its input, before the padding
                end = len(inputs[i])
                scored = F.log_softmax(logits[i, end - len(continuation_tokens):end], dim=-1,
                                       dtype=self.softmax_dtype).unsqueeze(0)
                for answered, cont_toks, cont_logits in ordered.get_cache(
                        req_str=request_str, cxt_toks=context_tokens, cont_toks=continuation_tokens, logits=scored):
                    cont = torch.tensor(cont_toks, dtype=torch.long, device=self.device).unsqueeze(0)
                    picked = torch.gather(cont_logits, 2, cont.unsqueeze(-1)).squeeze(-1)
                    answer = (float(picked.sum()), _is_greedy(scored, cont))
                    results.append(answer)
                    if answered is not None:
                        self.cache_hook.add_partial("loglikelihood", answered, answer)
                    progress.update(1)
        progress.close()
        return ordered.get_original(results)
