"""A baseline's learning rate, picked on validation the way SubTuning picks its units.

SubTuning chooses what it trains from short runs scored on validation (the profile); a
baseline gets the same care for its one free knob: each learning rate of a small grid
trains on the profile's short schedule, the best validation score (accuracy, then loss)
wins, and only the winner trains the full schedule. Test images are never looked at.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Callable

from forkpoint.contract.errors import ConfigError
from forkpoint.learner.parallel import SERIAL, Executor
from forkpoint.learner.profile import Candidate, ScoreJob, score_ranges
from forkpoint.learner.train import TrainConfig

# Grids, one decade wide around each method's usual rate. Full finetuning moves pretrained
# weights that were tuned at a low rate; adapters and copied units start where SubTuning does.
FULL_FT_LRS = (1e-3, 3e-4, 1e-4)
BRANCH_LRS = (3e-3, 1e-3, 3e-4)


@dataclass(frozen=True)
class LrTrial:
    """One short run: its rate and where validation left it."""

    lr: float
    val_acc: float
    val_loss: float
    seconds: float

    def key(self) -> tuple[float, float]:
        return (self.val_acc, -self.val_loss)


@dataclass(frozen=True)
class LrChoice:
    """The rate validation chose and every trial behind the choice."""

    lr: float
    trials: tuple[LrTrial, ...]

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.trials)

    def to_dict(self) -> dict:
        return {"lr": self.lr, "seconds": self.seconds, "trials": [asdict(t) for t in self.trials]}


def pick_lr(grid: tuple[float, ...], trial: Callable[[float], tuple[float, float]]) -> LrChoice:
    """Run ``trial(lr) -> (val_acc, val_loss)`` for every rate in ``grid``; the best key wins.

    Ties go to the earlier rate in ``grid``, so the choice depends on validation alone. A
    one-rate grid is no choice: nothing is trained for it.
    """
    if not grid or any(lr <= 0 for lr in grid):
        raise ConfigError(f"learning-rate grid {grid} must hold positive rates")
    if len(grid) == 1:
        return LrChoice(grid[0], ())
    trials = []
    for lr in grid:
        t0 = time.perf_counter()
        acc, loss = trial(lr)
        loss = float(loss) if loss == loss else float("inf")  # a diverged run's NaN loss ranks last
        trials.append(LrTrial(lr, float(acc), loss, time.perf_counter() - t0))
    best = max(range(len(trials)), key=lambda i: (trials[i].key(), -i))
    return LrChoice(trials[best].lr, tuple(trials))


def scaled_rates(cfg: TrainConfig, factor: float) -> TrainConfig:
    """``cfg`` with the blocks' and the head's rates both multiplied by ``factor`` (their ratio kept)."""
    return cfg if factor == 1.0 else replace(cfg, lr=cfg.lr * factor, head_lr=cfg.head_lr * factor)


def pick_rate(job: ScoreJob, chosen: Candidate, factors: tuple[float, ...], executor: Executor = SERIAL
              ) -> tuple[float, list[Candidate]]:
    """SubTuning's own rate pick: the chosen branch on the profile's schedule at each factor of its rates.

    ``chosen`` was already scored at factor 1.0 by selection, so that trial costs nothing; the
    others train the same range from the same seed. The same rule as the baselines' (:func:`pick_lr`):
    best validation accuracy, then loss, ties to the earlier factor. Returns the factor and the
    extra candidates trained (stage ``lr x F``), which the report lists beside greedy's.
    """
    others = [f for f in factors if f != 1.0]
    runs: dict[float, Candidate] = {1.0: chosen}
    for f in others:  # one at a time: each job differs in its config, not its range
        cand = score_ranges(replace(job, cfg=scaled_rates(job.cfg, f)), [(chosen.start, chosen.stop)], f"lr x{f:g}", executor)[0]
        runs[f] = cand
    choice = pick_lr(tuple(factors), lambda f: (runs[f].val_acc, runs[f].val_loss))
    return choice.lr, [runs[f] for f in others]
