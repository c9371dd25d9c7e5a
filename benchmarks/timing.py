"""Wall-clock timing that survives a busy machine: warm-up, interleaving, medians.

Timing the compared variants round-robin (A, B, C, A, B, C, ...) exposes all of them
to the same background load, so their *ratios* stay meaningful when the absolute
numbers drift.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

from forkpoint.learner.device import synchronize as _sync


def interleaved_medians(fns: dict[str, Callable[[], object]], device: torch.device, warmup: int, repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, timed in round-robin order under inference mode."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        _sync(device)
        for _ in range(repeats):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                _sync(device)
                times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}
