"""What a branch is, in one convention: tuned units ``[start, stop)`` plus a linear head.

Inside the code every unit range is half-open. ``start == stop`` is the empty branch,
the linear probe on the trunk's features; it is stored as ``start == stop == num_blocks``
so that its fork sits after the last unit (it adds no unit to the shared pass). Only the
CLI speaks the human, inclusive ``START:END`` syntax (and ``probe``), converted here by
:func:`parse_range` at the boundary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from forkpoint.contract.errors import BranchMismatchError, ConfigError

PROBE_WORDS = ("probe", "linear", "head")


@dataclass(frozen=True)
class UnitRange:
    """Consecutive units ``[start, stop)`` of a backbone; empty (``start == stop``) means head only."""

    start: int
    stop: int

    @classmethod
    def probe(cls, num_blocks: int) -> "UnitRange":
        return cls(num_blocks, num_blocks)

    @property
    def is_probe(self) -> bool:
        return self.start == self.stop

    def __len__(self) -> int:
        return self.stop - self.start

    def check(self, num_blocks: int, what: str = "branch") -> "UnitRange":
        """A usable range of a backbone with ``num_blocks`` units, else a one-line ConfigError."""
        s, e, n = self.start, self.stop, num_blocks
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (s, e))
        if not ints or not (0 <= s <= e <= n) or (s == e and s != n):
            raise ConfigError(
                f"{what} {s}:{e} is not a unit range of a backbone with {n} blocks: "
                f"use START:END with 0 <= START <= END <= {n - 1}, or 'probe' for a head-only branch"
            )
        return self

    def label(self, block_names: Sequence[str]) -> str:
        if self.is_probe:
            return "linear probe"
        names = block_names[self.start:self.stop]
        return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"

    def human(self) -> str:
        """The CLI's inclusive ``START:END`` (or ``probe``)."""
        return "probe" if self.is_probe else f"{self.start}:{self.stop - 1}"


def parse_range(text: str, num_blocks: int | None = None, *, inclusive: bool = True, what: str = "--branch") -> UnitRange:
    """The CLI's ``START:END`` (END inclusive), ``N`` (one unit) or ``probe`` -> a half-open UnitRange.

    ``inclusive=False`` reads ``LO:HI`` with HI exclusive (kept for ``--candidates``, which
    has always named a slice). Without ``num_blocks`` the range is only parsed; ``probe``
    then needs ``num_blocks`` to be placed.
    """
    raw = str(text).strip().lower()
    if raw in PROBE_WORDS:
        if num_blocks is None:
            raise ConfigError(f"{what} probe needs the backbone's block count: pass it once the trunk is known")
        return UnitRange.probe(num_blocks)
    try:
        if ":" in raw:
            a, b = (int(v) for v in raw.split(":", 1))
        else:
            a = b = int(raw)
            if not inclusive:
                b = a + 1
    except ValueError:
        form = "START:END (END inclusive), N or probe" if inclusive else "LO:HI (HI exclusive)"
        raise ConfigError(f"{what} {text!r} is not a unit range: use {form}") from None
    rng = UnitRange(a, b + 1 if inclusive else b)
    if rng.stop - rng.start < 1:
        form = "START <= END" if inclusive else "LO < HI"
        raise ConfigError(f"{what} {text!r} ends before it starts: use {form}")
    if num_blocks is not None and not (0 <= rng.start and rng.stop <= num_blocks):
        last = f"END <= {num_blocks - 1}" if inclusive else f"HI <= {num_blocks}"
        raise ConfigError(f"{what} {text!r} is not a unit range of a backbone with {num_blocks} blocks: use 0 <= START and {last}"
                          + (", or 'probe' for a head-only branch" if inclusive else ""))
    return rng


@dataclass(frozen=True)
class BranchSpec:
    """Where a branch forks and what its head looks like (everything but the weights)."""

    start: int
    stop: int
    num_classes: int
    feature_dim: int
    siamese: bool = False

    @property
    def units(self) -> UnitRange:
        return UnitRange(self.start, self.stop)

    @property
    def is_probe(self) -> bool:
        return self.start == self.stop

    @property
    def head_in(self) -> int:
        return self.feature_dim * (2 if self.siamese else 1)

    @property
    def head_shape(self) -> tuple[int, int]:
        return (self.num_classes, self.head_in)

    def check(self, num_blocks: int) -> "BranchSpec":
        self.units.check(num_blocks)
        if self.num_classes < 2:
            raise ConfigError(f"a task needs at least 2 classes, got {self.num_classes}: add classes to the dataset")
        if self.feature_dim <= 0:
            raise ConfigError(f"feature_dim {self.feature_dim} must be the trunk's (positive) feature width")
        return self

    def to_dict(self, block_names: Sequence[str]) -> dict[str, Any]:
        """The one stored form: half-open ``start``/``stop`` plus what a reader needs without the trunk."""
        d = asdict(self)
        d.update(block_names=list(block_names[self.start:self.stop]), head_shape=list(self.head_shape))
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BranchSpec":
        """Read the stored form; records older than schema 0003 carried an inclusive ``end`` instead of ``stop``."""
        try:
            start = int(d["start"])
            stop = int(d["stop"]) if "stop" in d else (start if int(d["end"]) < start else int(d["end"]) + 1)
            return cls(start, stop, int(d["num_classes"]), int(d["feature_dim"]), bool(d.get("siamese", False)))
        except (KeyError, TypeError, ValueError) as exc:
            raise BranchMismatchError(f"stored branch spec {dict(d)!r} is unreadable ({exc}): the record is damaged") from None
