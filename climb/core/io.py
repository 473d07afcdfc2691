"""Atomic writes: every output appears complete or not at all.

A job killed half-way leaves only a hidden temporary file beside its target, never a file
that looks done. Each writer goes to ``.{name}.tmp-{pid}`` in the target's folder and is
renamed over the target once flushed and fsynced.

A write that fails because the filesystem is full or read-only raises an ``OSError`` that names the
target and the reason ("No space left on device", "Read-only file system"), even when the library that
wrote (Arrow, NumPy) said only "400000 requested and 131056 written"; the temporary file is deleted.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

# errno values that mean "this output cannot be written here", as opposed to a failure of the code that writes
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _filesystem_problem(folder: Path) -> int | None:
    """ENOSPC or EROFS when the filesystem of ``folder`` (or its nearest existing parent) is full or read-only."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return errno.EROFS
    if st.f_bavail == 0 or st.f_favail == 0:
        return errno.ENOSPC
    return None


def _write_error(exc: BaseException, target: Path) -> OSError | None:
    """An OSError naming the output and the reason, for a write that failed on a full or read-only filesystem."""
    if not isinstance(exc, OSError) or getattr(exc, "climb_output", None):  # not a write, or named already
        return None
    code = exc.errno if exc.errno in WRITE_ERRNOS else None
    if code is None and exc.errno is None:  # a library's bare message: ask the filesystem
        code = _filesystem_problem(target.parent)
    if code is None:
        return None
    # The temporary file the error names (an inner writer's, in nested blocks) gives its output; a library
    # that names no file failed on this block's output, or on another one in the same full folder.
    named = Path(os.fsdecode(exc.filename)) if isinstance(exc.filename, str | bytes) else None
    match = re.fullmatch(r"\.(.+)\.tmp-\d+", named.name) if named is not None else None
    output = named.with_name(match.group(1)) if match else target
    reason = os.strerror(code)
    if exc.strerror != reason:  # keep what the writer said, unless it said just that
        reason = f"{reason} ({exc.strerror or exc})"
    error = OSError(code, reason, str(output))
    error.climb_output = str(output)
    return error


def _remove(tmp: Path) -> None:
    try:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists() or tmp.is_symlink():
            tmp.unlink()
    except OSError as err:  # never hide the error that made us clean up
        log.warning("could not remove the temporary %s: %s", tmp, err)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` on success, delete it on error."""
    target = Path(path)
    tmp = _tmp_path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        error = _write_error(exc, target)  # before the clean-up, which frees the space
        _remove(tmp)
        if error is not None:
            raise error from exc
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[Any]:
    """Open a temporary file for writing; it replaces ``path`` only when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON (stable bytes for equal content)."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, ensure_ascii=False)
        fh.write("\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Write one key-sorted JSON object per line (stable bytes for equal content)."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_parquet(path: str | os.PathLike, table: pa.Table, **kwargs: Any) -> None:
    """Write a Parquet file atomically, without timestamps or other run-dependent metadata."""
    kwargs.setdefault("compression", "zstd")
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **kwargs)


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save an array as ``.npy`` atomically."""
    with atomic_open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
