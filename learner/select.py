"""Greedy choice of the branch: which consecutive units to tune, on validation data only.

As in the paper: start from the profile's best single unit, then try growing the run by
one unit to the left or to the right; keep the better growth only while validation
accuracy improves by more than the margin. Budgets bound the number of tuned units and
the extra inference cost (a fork at unit i makes every later unit run once more per task).

Growth and the choice of the starting unit use the plain ``eps``: the candidates are
all short profile runs, compared with each other. The linear probe (empty branch, no
extra cost) is compared with the *trained* branch (see ``learner.task``) with a
noise-aware margin, ``max(eps, z * SE)``, where SE is the standard error of the paired
accuracy difference on the same validation images: a branch is served only when it
beats the probe by more than noise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

from forkpoint.contract.errors import ConfigError
from forkpoint.learner.profile import Candidate

DEFAULT_EPS = 0.005
DEFAULT_Z = 1.0
DEFAULT_MAX_BLOCKS = 3
DEFAULT_MAX_EXTRA_COST = 30.0


@dataclass(frozen=True)
class SelectionConfig:
    eps: float = DEFAULT_EPS
    max_blocks: int = DEFAULT_MAX_BLOCKS
    max_extra_cost: float = DEFAULT_MAX_EXTRA_COST  # % of one backbone pass
    z: float = DEFAULT_Z  # standard errors a candidate must win by (0 = plain eps)

    def __post_init__(self) -> None:
        if self.max_blocks < 1:
            raise ConfigError(f"--budget-blocks {self.max_blocks} must be >= 1")
        if self.max_extra_cost <= 0:
            raise ConfigError(f"--max-extra-cost {self.max_extra_cost} must be > 0 (percent of one backbone pass)")
        if self.eps < 0 or self.z < 0:
            raise ConfigError(f"--eps {self.eps} and z {self.z} must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


def paired_se(a: Candidate, b: Candidate) -> float:
    """Standard error of acc(a) - acc(b) over the same validation images (0 when unknown)."""
    if a.val_correct is None or b.val_correct is None or len(a.val_correct) != len(b.val_correct) or len(a.val_correct) < 2:
        return 0.0
    d = a.val_correct.float() - b.val_correct.float()
    return float(d.std(unbiased=True)) / math.sqrt(len(d))


def beats(a: Candidate, b: Candidate, cfg: SelectionConfig, noise_aware: bool = True) -> bool:
    """``a`` is better than ``b`` by more than ``eps`` (and, if ``noise_aware``, than z paired standard errors)."""
    margin = max(cfg.eps, cfg.z * paired_se(a, b)) if noise_aware else cfg.eps
    return a.val_acc - b.val_acc > margin


def _cost_key(c: Candidate) -> tuple[float, int]:
    return (c.extra_cost_pct, c.params)


def cheapest_near_best(cands: Sequence[Candidate], cfg: SelectionConfig) -> Candidate:
    """The best candidate, or a cheaper one that the best does not beat by more than noise."""
    best = max(cands, key=lambda c: (c.val_acc, -c.val_loss if c.val_loss == c.val_loss else 0.0, c.start))
    near = [c for c in cands if c is best or not beats(best, c, cfg, noise_aware=False)]
    return min(near, key=_cost_key)


def greedy_select(
    profile: Sequence[Candidate],
    score: Callable[[int, int], Candidate],
    extra_cost: Callable[[int], float],
    num_blocks: int,
    cfg: SelectionConfig,
    probe: Candidate | None = None,
) -> tuple[Candidate, list[Candidate]]:
    """Return the chosen range (possibly the probe) and every greedy candidate tried (for the audit trail)."""
    affordable = [c for c in profile if c.extra_cost_pct <= cfg.max_extra_cost]
    if not affordable:
        if probe is not None:
            return probe, []
        cheapest = min((c.extra_cost_pct for c in profile), default=float("nan"))
        raise ConfigError(
            f"no profiled block fits the extra-cost budget of {cfg.max_extra_cost:g}% (cheapest is {cheapest:.1f}%): raise --max-extra-cost or profile later blocks"
        )
    current = cheapest_near_best(affordable, cfg)
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
        if beats(best, current, cfg, noise_aware=False):
            current = best
        else:
            break
    if probe is not None and not beats(current, probe, cfg):
        return probe, tried
    return current, tried
