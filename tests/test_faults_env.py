"""Faults of the environment: a full or read-only output filesystem, a teacher endpoint that is down.

The filesystem tests mount a 1 MiB tmpfs and a read-only bind mount (root only; root ignores file modes, so modes
would prove nothing). Without root or without the right to mount they skip, and fail instead when CI=true.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from climb.core.io import atomic_open, atomic_path, save_npy, write_json, write_parquet
from climb.core.log import log_to
from climb.corpus.ingest import ingest_shard
from climb.quality.annotate import annotate
from climb.quality.openai_teacher import OpenAISettings, OpenAITeacher, TeacherError

CRITERIA = ["writing_quality", "educational_value"]


# --- mounts ---------------------------------------------------------------------------------------------------


def cannot(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: this test must run)")
    pytest.skip(reason)


def mount(*args: str) -> None:
    if os.geteuid() != 0:
        cannot("not root: mounting a tmpfs / read-only bind mount needs root")
    if shutil.which("mount") is None:
        cannot("no `mount` command")
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        cannot(f"mount {' '.join(args)} is not permitted here: {proc.stderr.strip()}")


def unmount(path: Path) -> None:
    proc = subprocess.run(["umount", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:  # busy: detach now, the kernel finishes when the last file closes
        subprocess.run(["umount", "-l", str(path)], capture_output=True, text=True)


def is_mountpoint(path: Path) -> bool:
    return subprocess.run(["mountpoint", "-q", str(path)]).returncode == 0


@pytest.fixture
def full_dir(tmp_path):
    """A 1 MiB tmpfs: any big write fills it."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt))
    try:
        yield mnt
    finally:
        unmount(mnt)
    assert not is_mountpoint(mnt)


@pytest.fixture
def ro_dir(tmp_path):
    """A read-only bind mount of ``tmp_path/src`` (which holds an existing ``results/`` folder)."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    (src / "results").mkdir(parents=True)
    ro.mkdir()
    mount("--bind", str(src), str(ro))
    try:
        proc = subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], capture_output=True, text=True)
        if proc.returncode != 0:
            cannot(f"remounting the bind mount read-only is not permitted here: {proc.stderr.strip()}")
        yield ro
    finally:
        unmount(ro)
    assert not is_mountpoint(ro)
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*")) == ["results"]  # nothing got through


def big_jsonl(path: Path, n_docs: int = 1500, chars: int = 2000) -> Path:
    """Incompressible documents (random hex): their corpus Parquet is well over 1 MiB."""
    rng = np.random.default_rng(0)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n_docs):
            fh.write(json.dumps({"id": f"d{i}", "text": rng.bytes(chars // 2).hex()}) + "\n")
    return path


def writers(root: Path) -> list[tuple[Path, object]]:
    """Every atomic writer of climb.core.io, each with an output of about 3 MB under ``root``."""
    rng = np.random.default_rng(1)

    def text(path: Path) -> None:
        with atomic_open(path, "w", encoding="utf-8") as fh:
            for _ in range(300):
                fh.write(rng.bytes(5000).hex() + "\n")

    def folder(path: Path) -> None:
        with atomic_path(path) as tmp:
            tmp.mkdir()
            (tmp / "part.bin").write_bytes(rng.bytes(3 << 20))

    return [
        (root / "a.json", lambda p: write_json(p, [rng.bytes(1000).hex() for _ in range(1500)])),
        (root / "results" / "a.parquet", lambda p: write_parquet(p, pa.table({"x": rng.random(400_000)}))),
        (root / "a.npy", lambda p: save_npy(p, rng.random(400_000))),
        (root / "a.txt", text),
        (root / "new" / "sub" / "a.json", lambda p: write_json(p, [rng.bytes(1000).hex() for _ in range(1500)])),
        (root / "model", folder),
    ]


def files_under(root: Path) -> list[str]:
    """Every file (hidden temporaries included) under ``root``."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


def check_error(err: pytest.ExceptionInfo, target: Path, code: int, reason: str) -> None:
    message = str(err.value)
    assert err.value.errno == code, message
    assert reason in message and str(target) in message, message


def test_full_filesystem_atomic_writers(full_dir):
    for target, write in writers(full_dir):
        with pytest.raises(OSError) as err:
            write(target)
        check_error(err, target, errno.ENOSPC, "No space left on device")
        assert files_under(full_dir) == [], target  # no final file, no stray temporary
    # the space is back (nothing hidden holds it): a small output fits
    write_json(full_dir / "small.json", {"ok": True})
    assert files_under(full_dir) == ["small.json"]


def test_full_filesystem_ingest_leaves_no_partial_output(full_dir, tmp_path):
    source = big_jsonl(tmp_path / "big.jsonl")
    out = full_dir / "results" / "corpus"
    with pytest.raises(OSError) as err:
        ingest_shard(source, out / "s.parquet", out / "s.rejects.jsonl", out / "s.counts.json", shard="s",
                     batch_rows=100)
    check_error(err, out / "s.parquet", errno.ENOSPC, "No space left on device")
    assert files_under(full_dir) == []
    # the same ingest on a roomy disk works: the failure was the disk's
    ingest_shard(source, tmp_path / "s.parquet", tmp_path / "s.rejects.jsonl", tmp_path / "s.counts.json", shard="s")
    assert (tmp_path / "s.parquet").stat().st_size > 1 << 20


def test_read_only_filesystem_atomic_writers(ro_dir):
    for target, write in writers(ro_dir):
        with pytest.raises(OSError) as err:
            write(target)
        check_error(err, target, errno.EROFS, "Read-only file system")


def test_read_only_filesystem_ingest(ro_dir, tmp_path):
    source = big_jsonl(tmp_path / "small.jsonl", n_docs=10)
    out = ro_dir / "results"
    with pytest.raises(OSError) as err:
        ingest_shard(source, out / "s.parquet", out / "s.rejects.jsonl", out / "s.counts.json", shard="s")
    check_error(err, out / "s.rejects.jsonl", errno.EROFS, "Read-only file system")  # the first one it opens


def test_other_errors_inside_a_writer_are_not_relabelled(tmp_path):
    """A missing input read inside the block is the input's error, not the output's."""
    with pytest.raises(FileNotFoundError, match="no-such-input"), atomic_open(tmp_path / "out.txt") as fh:
        fh.write((tmp_path / "no-such-input").read_text())
    assert files_under(tmp_path) == []


# --- the teacher endpoint is down ------------------------------------------------------------------------------


class DeadEndpoint:
    """A port on 127.0.0.1 that refuses, hangs up after each request, or accepts and never answers."""

    def __init__(self, mode: str):
        self.mode = mode
        self.accepted = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))  # bound, so nobody else takes the port; not listening: refused
        self.port = self.sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.stop = threading.Event()
        if mode != "refuse":
            self.sock.listen(16)  # "hang": connections wait in the backlog, never accepted, never answered
        if mode == "close":
            self.sock.settimeout(0.05)
            self.thread = threading.Thread(target=self._close_all, daemon=True)
            self.thread.start()

    def _close_all(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            with conn:  # read the whole request, then hang up without an answer (a crashed or restarting server)
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                while len(body) < length and (chunk := conn.recv(65536)):
                    body += chunk

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def dead():
    endpoints = []

    def make(mode: str) -> DeadEndpoint:
        endpoints.append(DeadEndpoint(mode))
        return endpoints[-1]

    yield make
    for e in endpoints:
        e.close()


TEACHER = {"model": "fake-teacher", "api_key_env": None, "timeout_s": 0.3, "max_retries": 2, "backoff_s": 0.01,
           "max_backoff_s": 0.05}


@pytest.mark.parametrize("mode, reason", [
    ("refuse", "Connection refused"),
    ("close", "RemoteDisconnected: Remote end closed connection without response"),
    ("hang", "timed out"),
])
def test_teacher_endpoint_down_is_a_clear_error_after_bounded_retries(dead, tmp_path, mode, reason):
    endpoint = dead(mode)
    teacher = OpenAITeacher(OpenAISettings.from_config({**TEACHER, "base_url": endpoint.base_url}), CRITERIA,
                            cache_path=tmp_path / "cache.jsonl")
    t0 = time.monotonic()
    with pytest.raises(TeacherError) as err:
        teacher.annotate(["d0", "d1"], ["first document", "second document"])
    elapsed = time.monotonic() - t0
    message = str(err.value)
    assert message.startswith(f"{endpoint.base_url}/chat/completions: no answer after 3 attempts; last error: "), message
    assert re.search(reason, message), message
    assert err.value.__cause__ is None and err.value.__context__ is None  # one error, not a chain of them
    assert elapsed < 10, f"{elapsed:.1f} s: retries are not bounded"
    assert teacher.counts["requests"] <= 2 * 3  # two documents in flight at most, 3 attempts each
    if mode == "close":
        assert 3 <= endpoint.accepted <= 6
    assert not (tmp_path / "cache.jsonl").exists() or (tmp_path / "cache.jsonl").read_text() == ""


def test_teacher_endpoint_down_through_the_annotation_job(dead, tmp_path):
    """The rule's entry point under log_to: the log names the endpoint, each retry and the final reason."""
    endpoint = dead("refuse")
    corpus = tmp_path / "corpus.parquet"
    write_parquet(corpus, pa.table({"id": ["a", "b", "c"], "text": ["one doc", "two doc", "three doc"]}))
    log = tmp_path / "annotate.log"
    teacher = {"kind": "openai", "openai": {**TEACHER, "base_url": endpoint.base_url, "max_concurrency": 1}}
    with pytest.raises(TeacherError, match="Connection refused"), log_to(log):
        annotate([str(corpus)], str(tmp_path / "annotations.parquet"), CRITERIA, teacher, 3, 1,
                 cache_path=str(tmp_path / "cache.jsonl"))
    text = log.read_text()
    url = f"{endpoint.base_url}/chat/completions"
    assert f"{url}: URLError: [Errno 111] Connection refused; retry 1/2" in text
    assert f"TeacherError: {url}: no answer after 3 attempts; last error: URLError: [Errno 111] Connection refused" \
        in text
    assert not (tmp_path / "annotations.parquet").exists()
