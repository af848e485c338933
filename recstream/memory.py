"""Keep freed memory in the process instead of handing it back to the kernel at once.

Training frees and allocates blocks of tens of megabytes every batch (the ``[N, n_items]``
logits and their gradients, the seen-item masks). glibc serves blocks above its mmap
threshold with fresh ``mmap`` calls and trims the heap's top whenever 128 KiB are free, so each
such block comes back from the kernel page by page, zero-filled, every batch. Raising the
thresholds once at start keeps that memory mapped and reused (docs/model.md has the
measurement). Linux with glibc only; elsewhere nothing changes.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -2, -3, -4
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 1024 * 1024 * 1024
TOP_PAD = 64 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Apply the thresholds; whether glibc took them."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    settings = (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_TOP_PAD, TOP_PAD),
        # Blocks above 32 MiB (a batch's logits: 3,200 × 3,706 float32 = 47 MB) would still
        # be mmapped afresh: serve every block from the heap, which the trim threshold keeps.
        (M_MMAP_MAX, 0),
    )
    return all(mallopt(param, value) == 1 for param, value in settings)
