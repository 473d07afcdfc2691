"""The `openai` teacher against a real HTTP server on 127.0.0.1 that speaks the chat-completions protocol.

The server decides what to do from a marker in the document text (answer well, answer malformed JSON,
scores out of range, stall past the client's timeout, 429, 500) and records every request, so the tests
can count what was asked.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from climb.quality.criteria import CriteriaError
from climb.quality.openai_teacher import OpenAISettings, OpenAITeacher, TeacherError, parse_answer

CRITERIA = ["writing_quality", "advertisement", "informational_value", "educational_value"]
KEY_ENV = "CLIMB_TEST_TEACHER_KEY"


def expected_scores(doc: str) -> dict[str, int]:
    """What the fake teacher answers for a document (a function of its text)."""
    n = len(doc)
    return {c: (n + i) % 6 for i, c in enumerate(CRITERIA)}


class FakeTeacher:
    """A chat-completions server whose behaviour per document is scripted by a marker like [500x2]."""

    def __init__(self):
        self.requests: Counter[str] = Counter()
        self.auth: list[str | None] = []
        self.bodies: list[dict] = []
        self.inflight = 0
        self.max_inflight = 0
        self.lock = threading.Lock()
        teacher = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                doc = re.search(r"<<<\n(.*)\n>>>", body["messages"][-1]["content"], re.S).group(1)
                with teacher.lock:
                    teacher.requests[doc] += 1
                    n = teacher.requests[doc]
                    teacher.auth.append(self.headers.get("Authorization"))
                    teacher.bodies.append(body)
                    teacher.inflight += 1
                    teacher.max_inflight = max(teacher.max_inflight, teacher.inflight)
                self.counted = True
                try:
                    self.respond(doc, n, body)
                finally:
                    self.uncount()

            def send_response(self, code, message=None):
                # A request stops counting as in flight before its answer is written: once the client
                # has the answer it may send the next request while this thread has not yet returned
                # (under load that gap made the count read one more than the client ever had open).
                self.uncount()
                super().send_response(code, message)

            def uncount(self):
                if getattr(self, "counted", False):
                    self.counted = False
                    with teacher.lock:
                        teacher.inflight -= 1

            def respond(self, doc, n, body):
                m = re.search(r"\[(\w+?)(?:x(\d+))?\]", doc)
                kind, times = (m.group(1), int(m.group(2) or 1)) if m else ("good", 0)
                failing = n <= times  # the first `times` requests misbehave, later ones are answered well
                if kind == "slow":
                    time.sleep(0.05)
                if kind == "timeout" and failing:
                    time.sleep(0.6)  # longer than the client's timeout
                if kind in ("429", "500") and failing:
                    self.send_response(int(kind))
                    if kind == "429":
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(json.dumps({"error": {"message": f"scripted {kind}"}}).encode())
                    return
                if kind == "401":
                    self.send_response(401)
                    self.end_headers()
                    self.wfile.write(b'{"error": "bad key"}')
                    return
                scores = expected_scores(doc)
                if kind == "malformed" and failing:
                    content = "Sure! Here are the scores: {writing_quality: 3"
                elif kind == "range" and failing:
                    content = json.dumps({**scores, "advertisement": 7})
                elif kind == "fenced":
                    content = "```json\n" + json.dumps(scores) + "\n```"
                else:
                    content = json.dumps(scores)
                reply = {"id": "x", "object": "chat.completion", "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": content}}]}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    fake = FakeTeacher()
    yield fake
    fake.close()


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test-123")


def make_teacher(server, tmp_path, **overrides):
    config = {"base_url": server.base_url, "model": "fake-teacher", "api_key_env": KEY_ENV, "timeout_s": 0.3,
              "max_retries": 3, "backoff_s": 0.01, "max_backoff_s": 0.05, "max_invalid_answers": 3,
              "max_concurrency": 4, **overrides}
    return OpenAITeacher(OpenAISettings.from_config(config), CRITERIA, cache_path=tmp_path / "cache.jsonl")


def docs(*texts):
    return [f"d{i}" for i in range(len(texts))], list(texts)


def test_good_answers_in_order_with_key_from_env(server, tmp_path):
    ids, texts = docs(*(f"A plain document number {i}." + " words" * i for i in range(10)), "a [fenced] answer")
    teacher = make_teacher(server, tmp_path)
    scores = teacher.annotate(ids, texts)
    assert scores == [expected_scores(t) for t in texts]
    assert sum(server.requests.values()) == len(texts) and teacher.counts["retries"] == 0
    assert set(server.auth) == {"Bearer sk-test-123"}
    body = server.bodies[0]
    assert body["model"] == "fake-teacher" and body["temperature"] == 0.0
    assert all(c in body["messages"][0]["content"] for c in CRITERIA)


def test_malformed_and_out_of_range_answers_are_asked_again(server, tmp_path):
    ids, texts = docs("first [malformedx2] doc", "second [rangex1] doc", "third, fine")
    teacher = make_teacher(server, tmp_path)
    assert teacher.annotate(ids, texts) == [expected_scores(t) for t in texts]
    assert server.requests[texts[0]] == 3 and server.requests[texts[1]] == 2 and server.requests[texts[2]] == 1
    assert teacher.counts["invalid_answers"] == 3


def test_answers_that_stay_unparseable_are_a_clear_error(server, tmp_path):
    ids, texts = docs("ok one", "never [malformedx99] parseable", "ok two")
    with pytest.raises(TeacherError, match=r"document 'd1': 3 answers in a row were not valid scores .*not valid JSON"):
        make_teacher(server, tmp_path, max_concurrency=1).annotate(ids, texts)
    assert server.requests[texts[1]] == 3
    with pytest.raises(TeacherError, match=r"outside 0\.\.5"):
        make_teacher(server, tmp_path).annotate(["r"], ["always [rangex99] out of range"])


def test_skip_policy_leaves_the_document_out_and_remembers_it(server, tmp_path):
    ids, texts = docs("ok one", "never [malformedx99] parseable")
    teacher = make_teacher(server, tmp_path, on_invalid="skip")
    assert teacher.annotate(ids, texts) == [expected_scores(texts[0]), None]
    assert teacher.counts["skipped"] == 1
    before = sum(server.requests.values())
    assert make_teacher(server, tmp_path, on_invalid="skip").annotate(ids, texts) == [expected_scores(texts[0]), None]
    assert sum(server.requests.values()) == before


def test_timeouts_429_and_500_are_retried_with_backoff(server, tmp_path):
    ids, texts = docs("slow [timeoutx1] doc", "busy [429x2] doc", "broken [500x2] doc", "calm doc")
    teacher = make_teacher(server, tmp_path)
    assert teacher.annotate(ids, texts) == [expected_scores(t) for t in texts]
    assert [server.requests[t] for t in texts] == [2, 3, 3, 1]
    assert teacher.counts["retries"] == 5


def test_retries_are_bounded(server, tmp_path):
    ids, texts = docs("down [500x99] for good")
    with pytest.raises(TeacherError, match=r"no answer after 3 attempts; last error: HTTP 500"):
        make_teacher(server, tmp_path, max_retries=2).annotate(ids, texts)
    assert server.requests[texts[0]] == 3
    with pytest.raises(TeacherError, match=r"no answer after 2 attempts; last error: TimeoutError"):
        make_teacher(server, tmp_path, max_retries=1).annotate(["t"], ["stuck [timeoutx99] doc"])


def test_client_errors_are_not_retried(server, tmp_path):
    with pytest.raises(TeacherError, match=r"HTTP 401 \(not retried\)"):
        make_teacher(server, tmp_path).annotate(["k"], ["wrong key [401]"])
    assert server.requests["wrong key [401]"] == 1


def test_rerun_asks_nothing_twice(server, tmp_path):
    texts = [f"document {i} " + "text " * i for i in range(8)] + ["poison [malformedx99] doc"]
    ids = [f"d{i}" for i in range(len(texts))]
    with pytest.raises(TeacherError):
        make_teacher(server, tmp_path, max_concurrency=2).annotate(ids, texts)
    asked = Counter(server.requests)
    answered = sum(1 for line in (tmp_path / "cache.jsonl").read_text().splitlines() if line)
    assert answered >= 1
    # the poison document is fixed upstream; the rerun asks only what has no answer yet
    texts[-1] = "poison fixed"
    teacher = make_teacher(server, tmp_path, max_concurrency=2)
    scores = teacher.annotate(ids, texts)
    assert scores == [expected_scores(t) for t in texts]
    assert teacher.counts["cached"] == answered and teacher.counts["asked"] == len(texts) - answered
    for t in texts[:-1]:
        assert server.requests[t] == 1, t  # nobody was asked twice
    assert server.requests["poison fixed"] == 1
    assert server.requests["poison [malformedx99] doc"] == asked["poison [malformedx99] doc"] == 3
    # a third run asks nothing at all; a changed document (new text, same id) is asked again
    total = sum(server.requests.values())
    assert make_teacher(server, tmp_path).annotate(ids, texts) == scores
    assert sum(server.requests.values()) == total
    texts[0] = "document 0 revised"
    make_teacher(server, tmp_path).annotate(ids, texts)
    assert sum(server.requests.values()) == total + 1


def test_a_cache_cut_mid_write_is_tolerated(server, tmp_path):
    ids, texts = docs("one doc", "two doc")
    make_teacher(server, tmp_path).annotate(ids, texts)
    cache = tmp_path / "cache.jsonl"
    cache.write_text(cache.read_text() + '{"id": "d9", "key": "abc", "sco')  # killed mid-line
    assert make_teacher(server, tmp_path).annotate(ids, texts) == [expected_scores(t) for t in texts]
    assert sum(server.requests.values()) == 2
    make_teacher(server, tmp_path).annotate(["d5"], ["three doc"])  # appends after the cut line
    assert json.loads(cache.read_text().splitlines()[-1])["id"] == "d5"


def test_concurrency_is_bounded(server, tmp_path):
    ids, texts = docs(*(f"[slow] doc {i}" for i in range(16)))
    make_teacher(server, tmp_path, max_concurrency=3).annotate(ids, texts)
    assert 2 <= server.max_inflight <= 3


def test_missing_key_env_is_a_clear_error(server, tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(TeacherError, match=f"environment variable '{KEY_ENV}', which is not set"):
        make_teacher(server, tmp_path)
    teacher = make_teacher(server, tmp_path, api_key_env=None)
    teacher.annotate(["x"], ["no auth needed"])
    assert server.auth == [None]


def test_parse_answer_is_strict():
    good = {c: 3 for c in CRITERIA}
    assert parse_answer(json.dumps(good), CRITERIA) == good
    assert parse_answer(json.dumps({**good, "advertisement": 4.0, "why": "x"}), CRITERIA)["advertisement"] == 4
    for bad, message in [("[1, 2]", "not an object"), ("{'a': 1}", "not valid JSON"),
                         (json.dumps({**good, "advertisement": 2.5}), "not an integer"),
                         (json.dumps({**good, "advertisement": "3"}), "not a number"),
                         (json.dumps({**good, "advertisement": -1}), "outside"),
                         (json.dumps({"writing_quality": 1}), "lacks"),
                         ("Scores: " + json.dumps(good), "not valid JSON")]:
        with pytest.raises(CriteriaError, match=message):
            parse_answer(bad, CRITERIA)


def test_annotate_rule_function_with_the_openai_teacher(server, tmp_path):
    """The annotation entry point with the schema's teacher section: labels per document, resumable via the cache."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from snakemake.utils import validate

    from climb.core.config import SCHEMA_PATH
    from climb.core.io import write_parquet
    from climb.quality.annotate import annotate

    config = {"quality": {"teacher": {"kind": "openai", "openai": {
        "base_url": server.base_url, "model": "fake-teacher", "api_key_env": KEY_ENV, "backoff_s": 0.01}}}}
    validate(config, str(SCHEMA_PATH))
    texts = [f"document {i} " + "word " * i for i in range(12)]
    corpus = tmp_path / "corpus.parquet"
    write_parquet(corpus, pa.table({"id": [f"d{i}" for i in range(12)], "text": texts}))
    out, cache = tmp_path / "annotations.parquet", tmp_path / "cache.jsonl"
    report = annotate([str(corpus)], str(out), CRITERIA, config["quality"]["teacher"], 8, 3, cache_path=str(cache))
    table = pq.read_table(out).to_pandas()
    assert len(table) == 8 == report["asked"] and set(table["teacher"]) == {"openai:fake-teacher"}
    for row in table.itertuples():
        assert {c: getattr(row, c) for c in CRITERIA} == expected_scores(row.text)
    asked = sum(server.requests.values())
    report = annotate([str(corpus)], str(out), CRITERIA, config["quality"]["teacher"], 8, 3, cache_path=str(cache))
    assert report["cached"] == 8 and report["asked"] == 0 and sum(server.requests.values()) == asked
