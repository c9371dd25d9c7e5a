"""How many CPU threads torch may use: all cores on an idle machine, one on a busy one.

On two cores shared with other jobs, two spinning OpenMP threads per process burn about
three times the CPU for the same work (measured: the demo took 880 s of CPU with two
threads under load 5, 300 s with one), so a busy machine gets one thread per process.
"""

from __future__ import annotations

import os
import time


def pick_threads(requested: int | None = None) -> int:
    """``requested`` if given; else the cores left idle right now (at least 1).

    "Right now" is :func:`busy_cores` (a 0.2 s sample of /proc/stat). The 1-minute load average
    is the fallback where /proc/stat is missing: it lags, so just after another job ended it
    still reads ~1.3 on idle cores and picked 1 thread where 2 were 10% faster
    (benchmarks/results/threads/cpu.json).
    """
    if requested:
        return requested
    cores = os.cpu_count() or 1
    busy = busy_cores()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except OSError:  # not available on this platform
            return cores
    return max(1, min(cores, round(cores - busy)))


def _cpu_times(path: str = "/proc/stat") -> tuple[int, int] | None:
    """(total, idle) jiffies of all CPUs, or None where the file is missing or unreadable."""
    try:
        with open(path) as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 4:
        return None
    return sum(fields[:8]), fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait


def busy_cores(interval: float = 0.2, path: str = "/proc/stat") -> float | None:
    """How many cores other processes keep busy now: a short sample while this process sleeps."""
    first = _cpu_times(path)
    if first is None:
        return None
    time.sleep(interval)
    second = _cpu_times(path)
    if second is None or second[0] <= first[0]:
        return None
    total, idle = second[0] - first[0], second[1] - first[1]
    return (1.0 - idle / total) * (os.cpu_count() or 1)


def apply_threads(requested: int | None = None) -> int:
    import torch

    n = pick_threads(requested)
    torch.set_num_threads(n)
    return n
