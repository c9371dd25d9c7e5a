"""A baseline's learning rate, picked on validation the way SubTuning picks its units.

SubTuning chooses what it trains from short runs scored on validation (the profile); a
baseline gets the same care for its one free knob: each learning rate of a small grid
trains on the profile's short schedule, the best validation score (accuracy, then loss)
wins, and only the winner trains the full schedule. Test images are never looked at.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

from forkpoint.contract.errors import ConfigError

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
