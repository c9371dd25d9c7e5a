"""Greedy choice of the branch: which consecutive units to tune, on validation data only.

As in the paper: start from the profile's best single unit, then try growing the run by
one unit to the left or to the right; keep the better growth only while validation
accuracy improves by more than the margin. One refinement (``free_growth``, the default):
growth to the right keeps the fork, so it costs no extra inference, only stored
parameters; the branch therefore tunes from its fork up to the block budget (or the
head) at once, and greedy steps only move the fork earlier, each one kept only if it
improves by the margin. On ~1,000 images per task the longer run won on every task of
the development sample, while its short scored run often did not show it (docs/ablation.md). Budgets bound the number of tuned units and
the extra inference cost (a fork at unit i makes every later unit run once more per task).

Profile and growth candidates are short runs compared with each other; by default
they are ranked by validation *loss* (``metric="loss"``), which on a few hundred
validation images is far less noisy than accuracy (a 150-image accuracy moves in
0.7-point steps). Growth must lower the loss by ``loss_eps`` (relative); with
``metric="acc"`` it must raise accuracy by ``eps`` (the paper's rule). The linear probe (empty branch, no
extra cost) is compared with the *trained* branch (see ``learner.task``) with a
noise-aware margin, ``max(eps, z * SE)``, where SE is the standard error of the paired
accuracy difference on the same validation images: a branch is served only when it
beats the probe by more than noise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

from forkpoint.contract import recipe
from forkpoint.contract.errors import ConfigError
from forkpoint.learner.profile import Candidate


Scorer = Callable[[Sequence[tuple[int, int]]], list[Candidate]]  # trains and scores unit ranges, in order


@dataclass(frozen=True)
class SelectionConfig:
    eps: float = recipe.EPS
    max_blocks: int = recipe.MAX_BLOCKS
    max_extra_cost: float = recipe.MAX_EXTRA_COST  # % of one backbone pass
    z: float = recipe.Z  # standard errors a candidate must win by (0 = plain eps)
    metric: str = "loss"  # how profile/greedy candidates are compared: "loss" or "acc"
    loss_eps: float = 0.02  # relative validation-loss drop a growth step must bring (metric="loss")
    # Tuning the units after the fork adds no inference cost (they run per task anyway), only
    # stored parameters: so a branch always tunes from its fork up to the block budget or the
    # head, and greedy only decides whether moving the fork earlier pays (``greedy_select``).
    # False: the paper's rule, every growth step (left or right) must improve by the margin.
    free_growth: bool = recipe.FREE_GROWTH

    def __post_init__(self) -> None:
        if self.max_blocks < 1:
            raise ConfigError(f"--budget-blocks {self.max_blocks} must be >= 1")
        if self.max_extra_cost <= 0:
            raise ConfigError(f"--max-extra-cost {self.max_extra_cost} must be > 0 (percent of one backbone pass)")
        if self.eps < 0 or self.z < 0 or self.loss_eps < 0:
            raise ConfigError(f"--eps {self.eps}, z {self.z} and loss_eps {self.loss_eps} must be >= 0")
        if self.metric not in ("loss", "acc"):
            raise ConfigError(f"selection metric {self.metric!r} is unknown: use loss or acc")

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


def _loss(c: Candidate) -> float:
    return c.val_loss if c.val_loss == c.val_loss else float("inf")


def improves(a: Candidate, b: Candidate, cfg: SelectionConfig) -> bool:
    """Growth rule: ``a`` is better than ``b`` by the configured metric and margin."""
    if cfg.metric == "loss":
        return _loss(a) < _loss(b) * (1.0 - cfg.loss_eps)
    return beats(a, b, cfg, noise_aware=False)


def cheapest_near_best(cands: Sequence[Candidate], cfg: SelectionConfig) -> Candidate:
    """The best candidate, or a cheaper one that the best does not improve on by the margin."""
    if cfg.metric == "loss":
        best = min(cands, key=lambda c: (_loss(c), _cost_key(c)))
    else:
        best = max(cands, key=lambda c: (c.val_acc, -_loss(c), c.start))
    near = [c for c in cands if c is best or not improves(best, c, cfg)]
    return min(near, key=_cost_key)


def _better(a: Candidate, b: Candidate, cfg: SelectionConfig) -> bool:
    if cfg.metric == "loss":
        return (_loss(a), -a.start) < (_loss(b), -b.start)
    return (a.val_acc, a.start) > (b.val_acc, b.start)


def greedy_select(
    profile: Sequence[Candidate],
    score: Scorer,
    extra_cost: Callable[[int], float],
    num_blocks: int,
    cfg: SelectionConfig,
    probe: Candidate | None = None,
) -> tuple[Candidate, list[Candidate]]:
    """Return the chosen range (possibly the probe) and every greedy candidate tried (for the audit trail).

    ``score(ranges)`` trains and scores a step's options (one or two ranges) and returns
    them in the same order; they are independent, so it may run them side by side
    (``profile.score_ranges`` on a Ray executor).
    """
    affordable = [c for c in profile if c.extra_cost_pct <= cfg.max_extra_cost]
    if not affordable:
        if probe is not None:
            return probe, []
        cheapest = min((c.extra_cost_pct for c in profile), default=float("nan"))
        raise ConfigError(
            f"no profiled block fits the extra-cost budget of {cfg.max_extra_cost:g}% (cheapest is {cheapest:.1f}%): raise --max-extra-cost or profile later blocks"
        )
    current = cheapest_near_best(affordable, cfg)
    known = {(c.start, c.stop): c for c in profile}

    def get(ranges: Sequence[tuple[int, int]]) -> list[Candidate]:
        """Scores of ``ranges``, trained side by side where the profile has not scored them already."""
        new = [r for r in ranges if r not in known]
        known.update({(c.start, c.stop): c for c in (score(new) if new else [])})
        return [known[r] for r in ranges]

    grow = _grow_fork if cfg.free_growth else _grow_both_ways
    current, tried = grow(current, get, extra_cost, num_blocks, cfg)
    tried = [c for c in tried if c.stage != "profile"]  # a profiled range reused is already in the trail
    if probe is not None and not beats(current, probe, cfg):
        return probe, tried
    return current, tried


def _grow_fork(current: Candidate, get: Scorer, extra_cost: Callable[[int], float],
               num_blocks: int, cfg: SelectionConfig) -> tuple[Candidate, list[Candidate]]:
    """Tune from the fork to the head (up to the block budget), then move the fork earlier while that pays.

    The run after a fork costs no extra inference, so it is tuned whole; a fork one unit
    earlier costs more inference, so it must improve by the margin on validation.
    """
    def run_from(a: int) -> tuple[int, int]:
        return a, min(num_blocks, a + cfg.max_blocks)

    tried: list[Candidate] = []
    if run_from(current.start) != (current.start, current.stop):
        current = get([run_from(current.start)])[0]
        tried.append(current)
    while current.start > 0 and extra_cost(current.start - 1) <= cfg.max_extra_cost:
        step = get([run_from(current.start - 1)])[0]
        tried.append(step)
        if not improves(step, current, cfg):
            break
        current = step
    return current, tried


def _grow_both_ways(current: Candidate, get: Scorer, extra_cost: Callable[[int], float],
                    num_blocks: int, cfg: SelectionConfig) -> tuple[Candidate, list[Candidate]]:
    """The paper's greedy: grow one unit left or right, keep the better growth while it improves by the margin."""
    tried: list[Candidate] = []
    while current.stop - current.start < cfg.max_blocks:
        options = []
        if current.start > 0 and extra_cost(current.start - 1) <= cfg.max_extra_cost:
            options.append((current.start - 1, current.stop))
        if current.stop < num_blocks:
            options.append((current.start, current.stop + 1))
        if not options:
            break
        scored = get(options)
        tried.extend(scored)
        best = scored[0] if len(scored) == 1 or _better(scored[0], scored[1], cfg) else scored[1]
        if not improves(best, current, cfg):
            break
        current = best
    return current, tried
