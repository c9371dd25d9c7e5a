"""Greedy choice of the branch: which consecutive units to tune, on validation data only.

As in the paper: start from the profile's best single unit, then try growing the run by
one unit to the left or to the right; keep the better growth only while validation
accuracy improves by more than ``eps``. Budgets bound the number of tuned units and the
extra inference cost (a fork at unit i makes every later unit run once more per task).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

from forkpoint.contract.errors import ConfigError
from forkpoint.learner.profile import Candidate

DEFAULT_EPS = 0.01
DEFAULT_MAX_BLOCKS = 3
DEFAULT_MAX_EXTRA_COST = 30.0


@dataclass(frozen=True)
class SelectionConfig:
    eps: float = DEFAULT_EPS
    max_blocks: int = DEFAULT_MAX_BLOCKS
    max_extra_cost: float = DEFAULT_MAX_EXTRA_COST  # % of one backbone pass

    def __post_init__(self) -> None:
        if self.max_blocks < 1:
            raise ConfigError(f"--budget-blocks {self.max_blocks} must be >= 1")
        if self.max_extra_cost <= 0:
            raise ConfigError(f"--max-extra-cost {self.max_extra_cost} must be > 0 (percent of one backbone pass)")

    def to_dict(self) -> dict:
        return asdict(self)


def greedy_select(
    profile: Sequence[Candidate],
    score: Callable[[int, int], Candidate],
    extra_cost: Callable[[int], float],
    num_blocks: int,
    cfg: SelectionConfig,
) -> tuple[Candidate, list[Candidate]]:
    """Return the chosen range and every greedy candidate tried (for the audit trail)."""
    affordable = [c for c in profile if c.extra_cost_pct <= cfg.max_extra_cost]
    if not affordable:
        cheapest = min((c.extra_cost_pct for c in profile), default=float("nan"))
        raise ConfigError(
            f"no profiled block fits the extra-cost budget of {cfg.max_extra_cost:g}% (cheapest is {cheapest:.1f}%): raise --max-extra-cost or profile later blocks"
        )
    # Ties go to the later (cheaper) unit.
    current = max(affordable, key=lambda c: (c.val_acc, c.start))
    tried: list[Candidate] = []
    while current.stop - current.start < cfg.max_blocks:
        options = []
        if current.start > 0 and extra_cost(current.start - 1) <= cfg.max_extra_cost:
            options.append((current.start - 1, current.stop))
        if current.stop < num_blocks:
            options.append((current.start, current.stop + 1))
        if not options:
            break
        scored = [score(a, b) for a, b in options]
        tried.extend(scored)
        best = max(scored, key=lambda c: (c.val_acc, c.start))
        if best.val_acc > current.val_acc + cfg.eps:
            current = best
        else:
            break
    return current, tried
