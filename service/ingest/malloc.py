"""Keep the embedding's large buffers in the heap instead of asking the kernel for fresh pages each batch.

glibc serves every allocation above its mmap threshold (at most 32 MB by default) with a fresh
``mmap`` and unmaps it on ``free``. Embedding a batch of 256 materials allocates activations of
tens to hundreds of MB (the XRD CNN's 5000-bin channels), so each batch mapped new memory and
faulted in every page again: ~400 page faults and ~0.9 ms of kernel CPU per material on the ingest
process, more than half the model's own 1.6 ms (measured on the 2-core development machine,
``getrusage`` over 768 COD CIFs). Raising the mmap and trim thresholds lets those buffers come from,
and return to, the heap: the faults drop to ~0 (kernel CPU 1.08 -> 0.12 ms per CIF), at a higher
peak RSS of the ingest process (874 -> 942 MB over 2,000 COD CIFs: the heap keeps the batch's buffers
between batches instead of unmapping them).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
"""``mallopt`` parameter numbers (glibc's ``malloc.h``)."""
M_MMAP_THRESHOLD = -3
LARGE_ALLOCATION_BYTES = 1 << 30
"""Allocations up to this size come from the heap, and up to this much free heap is kept, not trimmed."""


@functools.cache
def keep_large_allocations() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); False where libc is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # musl, macOS, Windows: nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    done = bool(mallopt(M_MMAP_THRESHOLD, LARGE_ALLOCATION_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, LARGE_ALLOCATION_BYTES)
    )
    logger.debug("malloc thresholds raised to %d bytes: %s", LARGE_ALLOCATION_BYTES, done)
    return done
