"""Process memory settings for chunk-by-chunk work."""
from __future__ import annotations

import ctypes
import os

#: glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
#: arrays below this come from the heap, whose freed memory is reused (glibc's dynamic maximum, 64-bit)
MMAP_THRESHOLD_BYTES = 32 * 2**20
#: -1: the heap is never trimmed (mallopt(3)); a worker keeps its largest chunk's memory for the next chunk
TRIM_THRESHOLD_BYTES = -1
TOP_PAD_BYTES = 64 * 2**20

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for the next chunk instead of handing it back to the kernel (once
    per process; True when applied). Every chunk allocates the same few GB of temporary arrays again; by default
    arrays over a dynamic threshold are mmapped and unmapped, and the heap top is trimmed (dask's workers trim at
    64 KiB), so each chunk pays its page faults anew: ``process()`` of the two 5000-event bench files with Deep Sets
    lite took 3.3-3.5 s instead of 2.7-2.8 s (README, issue 15). Nothing changes where the C library is not glibc
    (macOS) or where CALIBER_KEEP_FREED_MEMORY=0."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("CALIBER_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = all(mallopt(param, value) == 1 for param, value in ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
                                                                  (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
                                                                  (_M_TOP_PAD, TOP_PAD_BYTES)))
    return _applied
