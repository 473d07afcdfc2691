"""The lm-eval model that scores a proxy: lm-eval's ``HFLM``, with a call's strings tokenized at once.

``HFLM`` encodes each string by itself: a multiple-choice item's context once per choice, and once more with each
choice appended, each a separate call of the tokenizer. Here :meth:`ProxyScoringLM.loglikelihood` first encodes
every string the call will encode, each distinct one once, in one call of the tokenizer per special-token setting;
``tok_encode`` then hands out those ids. They are the same ids (the same tokenizer, the same setting), so lm-eval
builds, batches and scores the same token sequences: the scores are the same bytes.

Rolling windows (bits-per-byte tasks) are left as lm-eval batches them, in the documents' order: sorting them by
length would pad less, but changes the batch each window is computed in, and with it the last bits of a score on
the CPU, which the search's predictor then amplifies into other proposals.
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import _add_special_kwargs, has_bos_prefix


class ProxyScoringLM(HFLM):
    """``HFLM`` whose loglikelihood requests are tokenized in one call (see the module's text)."""

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
