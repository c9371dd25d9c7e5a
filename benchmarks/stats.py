"""Small aggregation helpers: mean ± std over seeds, medians of timings, safe ratios."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Callable, Iterable


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    vals = [float(v) for v in values]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den and math.isfinite(den) else float("nan")


def group(rows: list[dict], key: Callable[[dict], tuple]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        out[key(r)].append(r)
    return dict(out)


def regime_label(per_class: int | None) -> str:
    return "all" if per_class is None else f"{per_class}/class"
