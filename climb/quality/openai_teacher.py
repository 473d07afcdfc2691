"""A teacher LLM behind any OpenAI-compatible chat-completions endpoint (vLLM, TGI, NIM, OpenAI).

One request per document asks for every criterion at once; the answer must be a single JSON object
``{"<criterion>": <integer 0-5>, ...}`` (a surrounding Markdown code fence is tolerated, nothing else).

- Transport failures — timeouts, refused connections, HTTP 429 and 5xx — are retried with exponential
  back-off (``Retry-After`` is honoured, capped by ``max_backoff_s``) up to ``max_retries`` times; other
  HTTP errors (400, 401, 404, ...) fail at once with the server's message.
- An answer that is not valid JSON scores (malformed, a missing criterion, a score outside 0-5) is asked
  again up to ``max_invalid_answers`` times; then the job fails with the document id and the last answer
  (or, with ``on_invalid: skip``, the document is left out of the annotations and counted).
- At most ``max_concurrency`` requests are in flight.
- Resumable: every answer is appended to a JSON-lines cache as soon as it arrives; a rerun asks only
  for documents whose (model, prompt, text) has no cached answer, so a killed or failed job loses
  nothing it has paid for.
- The API key is read from the environment variable named by ``api_key_env``; it is never read from,
  or written to, any file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from climb.quality.criteria import CriteriaError, check_criteria, check_score, rubric

log = logging.getLogger("climb.quality.openai")

PROMPT_VERSION = "climb-rubric-v1"


class TeacherError(RuntimeError):
    """The teacher could not produce valid scores (a clear, final error)."""


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class OpenAISettings:
    base_url: str
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"
    max_concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_invalid_answers: int = 3
    on_invalid: str = "error"
    max_doc_chars: int = 6000
    temperature: float = 0.0
    max_tokens: int = 200
    json_mode: bool = False
    rubrics: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, section: Mapping[str, Any], rubrics: Mapping[str, str] | None = None) -> OpenAISettings:
        known = {f for f in cls.__dataclass_fields__ if f != "rubrics"}
        unknown = sorted(set(section) - known)
        if unknown:
            raise TeacherError(f"quality.teacher.openai: unknown key(s) {unknown}")
        if not section.get("base_url") or not section.get("model"):
            raise TeacherError("quality.teacher.openai: base_url and model are required for the openai teacher")
        return cls(**{k: v for k, v in section.items() if k in known}, rubrics=dict(rubrics or {}))


def build_messages(text: str, criteria: Sequence[str], settings: OpenAISettings) -> list[dict[str, str]]:
    """The chat messages for one document: our rubric prompt, then the (truncated) document."""
    keys = ", ".join(f'"{c}": <integer 0-5>' for c in criteria)
    system = (
        "You are a meticulous annotator of pretraining data for language models. You rate one document at a "
        "time on several additive rubrics, each an integer from 0 to 5. Judge only the document itself. "
        f"Answer with exactly one JSON object and nothing else: {{{keys}}}"
    )
    rubrics = "\n".join(f"- {c}: {rubric(c, settings.rubrics)}" for c in criteria)
    body = text if len(text) <= settings.max_doc_chars else text[: settings.max_doc_chars] + "\n[... truncated]"
    user = f"Rubrics:\n{rubrics}\n\nDocument:\n<<<\n{body}\n>>>\n\nThe JSON object of scores:"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_answer(content: str, criteria: Sequence[str]) -> dict[str, int]:
    """Strictly parse an answer into ``{criterion: 0..5}``; raises CriteriaError on anything else."""
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CriteriaError(f"answer is not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(obj, dict):
        raise CriteriaError(f"answer is a JSON {type(obj).__name__}, not an object")
    missing = [c for c in criteria if c not in obj]
    if missing:
        raise CriteriaError(f"answer lacks criterion/criteria {missing}")
    return {c: check_score(obj[c], c) for c in criteria}


class AnswerCache:
    """Append-only JSON-lines store of answers, keyed by document id and a hash of (model, prompt)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._fh = None
        if self.path and self.path.exists():
            lines = self.path.read_text(encoding="utf-8").split("\n")
            for n, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    if n == len(lines):  # the last line of a killed writer, cut mid-write
                        log.warning("%s:%d: ignoring an incomplete last line", self.path, n)
                        continue
                    raise TeacherError(f"{self.path}:{n}: not a JSON line; delete the cache to start over") from None
                self.entries[entry["id"]] = entry

    def get(self, doc_id: str, key: str) -> dict[str, Any] | None:
        entry = self.entries.get(doc_id)
        return entry if entry is not None and entry.get("key") == key else None

    def put(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.entries[entry["id"]] = entry
            if self.path is None:
                return
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                needs_newline = self.path.exists() and self.path.stat().st_size > 0 and \
                    not self.path.read_bytes().endswith(b"\n")
                self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open across calls)
                if needs_newline:
                    self._fh.write("\n")
            self._fh.write(json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
                self._fh = None


class OpenAITeacher:
    """Scores documents with an OpenAI-compatible endpoint; see the module docstring for the policy."""

    def __init__(self, settings: OpenAISettings, criteria: Sequence[str], cache_path: str | os.PathLike | None = None):
        self.settings = settings
        self.criteria = check_criteria(criteria)
        for c in self.criteria:
            rubric(c, settings.rubrics)  # unknown criterion without a rubric: fail before any request
        if settings.on_invalid not in ("error", "skip"):
            raise TeacherError(f"quality.teacher.openai.on_invalid: {settings.on_invalid!r} (error or skip)")
        self.name = f"openai:{settings.model}"
        self.cache_path = cache_path
        self.url = settings.base_url.rstrip("/") + "/chat/completions"
        self.counts = {"requests": 0, "retries": 0, "invalid_answers": 0, "cached": 0, "asked": 0, "skipped": 0}
        self._count_lock = threading.Lock()
        self._api_key = self._read_key()

    def _read_key(self) -> str | None:
        env = self.settings.api_key_env
        if not env:
            return None
        key = os.environ.get(env)
        if not key:
            raise TeacherError(
                f"quality.teacher.openai.api_key_env names the environment variable {env!r}, which is not set; "
                "export it (the key is never read from a config file), or set api_key_env: null for an "
                "endpoint without authentication"
            )
        return key

    def _count(self, name: str, n: int = 1) -> None:
        with self._count_lock:
            self.counts[name] += n

    def cache_key(self, messages: list[dict[str, str]]) -> str:
        blob = json.dumps([PROMPT_VERSION, self.settings.model, self.settings.temperature, messages], sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]

    # -- one HTTP exchange, with transport retries --------------------------------------------------
    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        data = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        last = ""
        for attempt in range(s.max_retries + 1):
            if attempt:
                self._count("retries")
            self._count("requests")
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                try:
                    with urllib.request.urlopen(request, timeout=s.timeout_s) as response:
                        body = response.read()
                except urllib.error.HTTPError as exc:
                    detail = exc.read().decode("utf-8", "replace")[:500]
                    if exc.code == 429 or exc.code >= 500:
                        raise _Retryable(f"HTTP {exc.code}: {detail}", _retry_after(exc.headers)) from None
                    raise TeacherError(f"{self.url}: HTTP {exc.code} (not retried): {detail}") from None
                except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
                    reason = getattr(exc, "reason", exc)
                    raise _Retryable(f"{type(exc).__name__}: {reason}") from None
            except _Retryable as exc:
                last = str(exc)
                if attempt == s.max_retries:
                    break
                delay = min(s.max_backoff_s, s.backoff_s * 2**attempt)
                if exc.retry_after is not None:
                    delay = min(s.max_backoff_s, max(delay, exc.retry_after))
                log.info("%s: %s; retry %d/%d in %.2fs", self.url, last, attempt + 1, s.max_retries, delay)
                time.sleep(delay)
                continue
            try:
                return json.loads(body)
            except json.JSONDecodeError:
                return {"_unparseable_body": body.decode("utf-8", "replace")[:500]}
        raise TeacherError(f"{self.url}: no answer after {s.max_retries + 1} attempts; last error: {last}")

    def _content(self, reply: dict[str, Any]) -> str:
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise CriteriaError(f"response is not a chat completion: {json.dumps(reply)[:300]}") from None
        if not isinstance(content, str):
            raise CriteriaError(f"message content is {type(content).__name__}, not text")
        return content

    def score_one(self, doc_id: str, text: str) -> dict[str, Any]:
        """Ask until a valid answer (or the invalid-answer budget is spent); returns the cache entry."""
        s = self.settings
        messages = build_messages(text, self.criteria, s)
        payload: dict[str, Any] = {"model": s.model, "messages": messages, "temperature": s.temperature,
                                   "max_tokens": s.max_tokens}
        if s.json_mode:
            payload["response_format"] = {"type": "json_object"}
        key = self.cache_key(messages)
        answer, problem = "", ""
        for _ in range(s.max_invalid_answers):
            reply = self._post(payload)
            try:
                answer = self._content(reply)
                scores = parse_answer(answer, self.criteria)
            except CriteriaError as exc:
                problem = str(exc)
                self._count("invalid_answers")
                log.info("document %r: invalid answer (%s): %.200r", doc_id, problem, answer)
                continue
            return {"id": doc_id, "key": key, "scores": scores}
        if s.on_invalid == "skip":
            self._count("skipped")
            log.warning("document %r: skipped after %d invalid answers (%s)", doc_id, s.max_invalid_answers, problem)
            return {"id": doc_id, "key": key, "invalid": problem, "answer": answer[:500]}
        raise TeacherError(
            f"document {doc_id!r}: {s.max_invalid_answers} answers in a row were not valid scores "
            f"({problem}); last answer: {answer[:300]!r}"
        )

    def annotate(self, ids: Sequence[str], texts: Sequence[str]) -> list[dict[str, int] | None]:
        """Scores per document, in input order; None for a document skipped as unanswerable."""
        cache = AnswerCache(self.cache_path)
        entries: dict[str, dict[str, Any]] = {}
        todo: list[tuple[str, str]] = []
        for doc_id, text in zip(ids, texts, strict=True):
            hit = cache.get(doc_id, self.cache_key(build_messages(text, self.criteria, self.settings)))
            if hit is not None:
                entries[doc_id] = hit
            else:
                todo.append((doc_id, text))
        self._count("cached", len(entries))
        self._count("asked", len(todo))
        log.info("%s: %d of %d documents already answered (cache %s), asking %d", self.name, len(entries), len(ids),
                 self.cache_path, len(todo))

        def work(doc_id: str, text: str) -> None:
            entry = self.score_one(doc_id, text)
            cache.put(entry)
            entries[doc_id] = entry

        try:
            with ThreadPoolExecutor(max_workers=max(1, self.settings.max_concurrency)) as pool:
                futures = [pool.submit(work, d, t) for d, t in todo]
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                failed = [f for f in done if f.exception() is not None]
                if failed:
                    for f in futures:
                        f.cancel()
                    raise failed[0].exception()
        finally:
            cache.close()
            log.info("%s: %s", self.name, self.counts)
        return [None if "scores" not in entries[d] else dict(entries[d]["scores"]) for d in ids]


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
