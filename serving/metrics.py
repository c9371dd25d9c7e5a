"""Prometheus text exposition (format 0.0.4) for the server, without a client library.

Three kinds, as Prometheus defines them: a counter only goes up, a gauge is set, a
histogram counts observations into cumulative ``le`` buckets plus ``_sum`` and
``_count``. Every family may carry labels; each method is thread-safe (the batcher's
worker thread, the follower and request handlers all record). :meth:`Metrics.render`
is what ``GET /metrics`` answers.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
    pairs = [*labels, *extra]
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}" if pairs else ""


def _number(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


@dataclass
class _Family:
    name: str
    help: str
    kind: str  # counter | gauge | histogram
    buckets: tuple[float, ...] = ()
    values: dict[Labels, float] = field(default_factory=dict)
    hist: dict[Labels, list[float]] = field(default_factory=dict)  # bucket counts..., sum, count

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        if self.kind != "histogram":
            out += [f"{self.name}{_labels(k)} {_number(v)}" for k, v in sorted(self.values.items())]
            return out
        for key, counts in sorted(self.hist.items()):
            running = 0.0
            for bound, n in zip(self.buckets, counts):
                running += n
                out.append(f"{self.name}_bucket{_labels(key, (('le', _number(bound)),))} {_number(running)}")
            total = counts[-1]
            out.append(f"{self.name}_bucket{_labels(key, (('le', '+Inf'),))} {_number(total)}")
            out.append(f"{self.name}_sum{_labels(key)} {_number(counts[-2])}")
            out.append(f"{self.name}_count{_labels(key)} {_number(total)}")
        return out


class Metrics:
    """A registry of metric families, rendered in Prometheus text format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {}

    def _family(self, name: str, help: str, kind: str, buckets: tuple[float, ...] = ()) -> _Family:
        fam = self._families.get(name)
        if fam is None:
            fam = self._families[name] = _Family(name, help, kind, tuple(sorted(buckets)))
        elif fam.kind != kind:
            raise ValueError(f"metric {name} is a {fam.kind}, not a {kind}")
        return fam

    @staticmethod
    def _key(labels: dict[str, str] | None) -> Labels:
        return tuple(sorted((k, str(v)) for k, v in (labels or {}).items()))

    def inc(self, name: str, help: str, amount: float = 1.0, labels: dict[str, str] | None = None) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        with self._lock:
            fam, key = self._family(name, help, "counter"), self._key(labels)
            fam.values[key] = fam.values.get(key, 0.0) + amount

    def set(self, name: str, help: str, value: float, labels: dict[str, str] | None = None) -> None:
        with self._lock:
            self._family(name, help, "gauge").values[self._key(labels)] = float(value)

    def replace(self, name: str, help: str, values: dict[str, float], label: str) -> None:
        """Set a gauge family to exactly ``values`` (one series per label value; stale series dropped)."""
        with self._lock:
            fam = self._family(name, help, "gauge")
            fam.values = {((label, k),): float(v) for k, v in values.items()}

    def observe(self, name: str, help: str, value: float, buckets: tuple[float, ...] = LATENCY_BUCKETS,
                labels: dict[str, str] | None = None) -> None:
        with self._lock:
            fam, key = self._family(name, help, "histogram", buckets), self._key(labels)
            counts = fam.hist.setdefault(key, [0.0] * (len(fam.buckets) + 2))
            for i, bound in enumerate(fam.buckets):
                if value <= bound:
                    counts[i] += 1
                    break
            counts[-2] += value
            counts[-1] += 1

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A counter's or gauge's current value (0 if never set), or a histogram's count: for tests and /readyz."""
        with self._lock:
            fam = self._families.get(name)
            if fam is None:
                return 0.0
            key = self._key(labels)
            if fam.kind == "histogram":
                return fam.hist.get(key, [0.0])[-1]
            return fam.values.get(key, 0.0)

    def render(self) -> str:
        with self._lock:
            lines = [line for fam in self._families.values() for line in fam.lines()]
        return "\n".join(lines) + "\n"
