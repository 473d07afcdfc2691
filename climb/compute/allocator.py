"""glibc's allocator, set for torch's tensors on the CPU: freed memory is kept for the next step, not handed back.

By default glibc serves every allocation of 32 MiB or more with its own ``mmap`` and unmaps it on ``free``. A CPU
training step of the embedded default's proxy allocates several such tensors (logits and their gradients:
16 x 128 x 4,096 float32 is exactly 32 MiB) and frees them again, so every step the kernel maps, zero-fills and
unmaps those pages afresh: ~40% of the step went to page faults. :func:`keep_freed_memory` turns that off for the
process: large blocks come from the heap, and up to :data:`TRIM_THRESHOLD` freed at its top stays mapped, so the
next step reuses the same pages. The arithmetic is unchanged (the same bits out); the process keeps its peak memory
mapped instead of returning it between steps (~150 MB more resident for the embedded default's proxy).

Called by the jobs that run torch on the CPU (proxy training and scoring, embedding). A no-op where the C library
is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_MAX = -4
TRIM_THRESHOLD = 1 << 30  # freed memory at the heap's top kept mapped, at most
_applied = False


def keep_freed_memory() -> bool:
    """Serve large allocations from glibc's heap and keep freed memory for reuse; True when it took effect (once per
    process; a forked child inherits it)."""
    global _applied
    if _applied:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 -- only glibc has it (and mallopt's parameters above)
    except (OSError, AttributeError):
        return False
    if not (libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        log.warning("glibc mallopt refused the settings; large tensors stay mmap-allocated (slower on the CPU)")
        return False
    _applied = True
    log.info("glibc malloc: large allocations from the heap, up to %d MiB of freed memory kept for reuse",
             TRIM_THRESHOLD >> 20)
    return True
