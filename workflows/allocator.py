"""glibc malloc thresholds for a process that allocates and frees large tensors all day.

By default glibc serves every block over 128 KiB-32 MiB (a dynamic threshold) with a fresh
``mmap`` and returns freed heap to the kernel eagerly, so each training step's activations
are new pages the kernel must fault in and zero: a one-thread Lite0 process spent 18-21% of
its time in the kernel (shared/measurements/serving-many-tasks.md: raising the thresholds
gave 20-87% more images per CPU-second and kernel time near zero). Keeping freed memory
in the heap trades a little resident memory for that. ``FORKPOINT_MALLOC=default`` opts out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest: bigger blocks still go to mmap
TRIM_THRESHOLD = 512 * 2**20  # free heap kept before trimming
TOP_PAD = 64 * 2**20

_applied: bool | None = None


def tune_malloc() -> bool:
    """Raise glibc's mmap/trim thresholds once per process; False where there is no glibc or it is opted out."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("FORKPOINT_MALLOC", "").lower() == "default":
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl, macOS: no mallopt
        return False
    ok = [mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD), mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD), mallopt(M_TOP_PAD, TOP_PAD)]
    _applied = all(r == 1 for r in ok)
    return _applied
