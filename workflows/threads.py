"""How many CPU threads torch may use: all cores on an idle machine, one on a busy one.

On two cores shared with other jobs, two spinning OpenMP threads per process burn about
three times the CPU for the same work (measured: the demo took 880 s of CPU with two
threads under load 5, 300 s with one), so a busy machine gets one thread per process.
"""

from __future__ import annotations

import os


def pick_threads(requested: int | None = None) -> int:
    """``requested`` if given; else the cores the 1-minute load average leaves idle (at least 1)."""
    if requested:
        return requested
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        return cores
    return max(1, min(cores, round(cores - load)))


def apply_threads(requested: int | None = None) -> int:
    import torch

    n = pick_threads(requested)
    torch.set_num_threads(n)
    return n
