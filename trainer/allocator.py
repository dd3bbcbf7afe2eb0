"""The process's heap settings for CPU training: freed tensor memory stays in the heap for the next update.

glibc's malloc serves blocks above its mmap threshold (128 KiB, rising to at most 32 MiB)
with a fresh ``mmap`` and returns them on ``free``, and trims the top of the heap when more
than twice that is free. A CPU training update allocates and frees the same large tensors
every time (activations, gradients, a batch-256 input of 58 MB), so each update pays for
the pages again: a page fault per 4 KiB. PyTorch's CPU tuning guide recommends jemalloc or
tcmalloc for this reason; raising glibc's two thresholds with ``mallopt`` gets the same
reuse without a preloaded library. Measured on batch-256 float32 Double DQN updates (one
thread, interleaved with the unchanged code): 5.0 -> 5.5 updates per CPU-second.
"""

from __future__ import annotations

import ctypes
import functools
import sys

__all__ = ["keep_freed_memory"]

#: mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap, and this much free heap is kept.
KEEP_BYTES = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to ``KEEP_BYTES`` (once). False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries: leave their allocator alone
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES))
