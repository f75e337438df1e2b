"""Process-level settings that make CPU runs faster: the allocator and the thread count.

PyTorch frees large CPU tensors back to the kernel (glibc returns every allocation above 32 MiB
with ``munmap``), so the next tensor of that size page-faults all over again; on a two-core machine
that costs a large share of an FFT-bound step. :func:`tune_allocator` tells glibc to keep freed
memory for reuse (no ``mmap`` for large blocks, no trimming). The CLI and the benchmarks call it
once at start-up; library code never changes process settings behind the caller's back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["configure_threads", "tune_allocator"]

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4
_tuned = False


def tune_allocator() -> bool:
    """Keep freed heap memory for reuse (glibc only). Returns whether the setting was applied.

    Set ``MRIRECON_NO_MALLOC_TUNING=1`` to leave the allocator alone.
    """
    global _tuned
    if _tuned:
        return True
    if os.environ.get("MRIRECON_NO_MALLOC_TUNING", "") not in ("", "0"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    mallopt(_M_TOP_PAD, 64 << 20)
    _tuned = ok
    return ok


def configure_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (``None`` keeps the default); returns the number in use."""
    import torch

    if threads is not None and threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
