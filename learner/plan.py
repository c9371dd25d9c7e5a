"""What add-task is about to do and roughly how long it will take, said before it starts.

A user who asks for ``--epochs 1`` still gets the step floor, a profile, greedy steps and,
on a tiny validation split, a cross-validation: each is listed here with why it runs, and a
rough duration is extrapolated from one timed forward pass of the trunk on this machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from forkpoint.learner.backbone import Backbone
from forkpoint.learner.config import AddTaskConfig
from forkpoint.learner.crossval import DEFAULT_FOLDS
from forkpoint.learner.train import TrainConfig, schedule

# A training step over b images of a branch forking at unit i costs about this many trunk
# forwards of b images times the share of FLOPs after the fork (forward + backward, and the
# poorer efficiency of small late maps); measured on Lite0 at 64 px, 2 CPU cores.
STEP_FACTOR = 6.0


@dataclass(frozen=True)
class PlannedPhase:
    name: str
    trainings: int
    steps: int  # optimizer steps per training
    why: str


def _steps_and_why(cfg: TrainConfig, n_train: int, flag: str) -> tuple[int, str]:
    total, _ = schedule(cfg, n_train)
    per_epoch = -(-n_train // cfg.batch_size)
    if total > cfg.epochs * per_epoch:
        return total, (f"the step floor {cfg.min_steps}{flag} exceeds {cfg.epochs} epoch(s) x "
                       f"{per_epoch} steps, so few images still converge")
    return total, f"{cfg.epochs} epoch(s) x {per_epoch} steps"


def plan_phases(cfg: AddTaskConfig, n_train: int, n_val: int, units: list[int]) -> list[PlannedPhase]:
    """The trainings add-task will run (an upper bound where greedy or validation may stop early)."""
    phases = []
    final_steps, final_why = _steps_and_why(cfg.train, n_train, " (--min-steps)")
    if cfg.branch is None and units:
        steps, why = _steps_and_why(cfg.profile, n_train, "")
        phases.append(PlannedPhase("profile", len(units), steps, f"each affordable block alone; {why}"))
        phases.append(PlannedPhase("select", 2, steps, "the run to the head, then an earlier fork if it pays (at most)"))
    if cfg.branch is None or not cfg.branch.is_probe:
        phases.append(PlannedPhase("train", 1, final_steps, f"the chosen branch (early stopping may end it sooner); {final_why}"))
    if cfg.branch is None and cfg.probe_candidate and n_val < cfg.cv_below_val:
        phases.append(PlannedPhase("cross-validate", DEFAULT_FOLDS, final_steps,
                                   f"{n_val} validation images < {cfg.cv_below_val}: branch vs probe by {DEFAULT_FOLDS} folds "
                                   "(skipped when validation alone is clear)"))
    return phases


@torch.no_grad()
def seconds_per_image(backbone: Backbone, batch: int = 16) -> float:
    """One trunk forward, per image, timed here (after one warm-up pass)."""
    device = next(backbone.parameters()).device
    x = torch.zeros(batch, 3, backbone.resolution, backbone.resolution, device=device)
    backbone(x)
    t0 = time.perf_counter()
    backbone(x)
    return (time.perf_counter() - t0) / batch


def estimate_seconds(backbone: Backbone, cfg: AddTaskConfig, phases: list[PlannedPhase], n_train: int, n_val: int,
                     n_test: int, units: list[int]) -> float:
    """Rough wall time: prefix passes over every image (and augmented view) plus the planned steps."""
    per_image = seconds_per_image(backbone)
    images = n_train * (1 + cfg.augment.views) + n_val + n_test
    fork = min(units) if units else (cfg.branch.start if cfg.branch is not None else backbone.num_blocks)
    share = backbone.extra_cost_pct(min(fork, backbone.num_blocks - 1)) / 100.0
    steps = sum(p.trainings * p.steps for p in phases)
    return per_image * (images + STEP_FACTOR * share * steps * min(cfg.train.batch_size, max(n_train, 1)))


def describe_plan(phases: list[PlannedPhase], seconds: float) -> str:
    """One line per phase and the estimate, for the CLI to print before the work starts."""
    lines = [f"plan: about {_human(seconds)} on this machine (a rough estimate)"]
    for p in phases:
        count = f"{p.trainings} x {p.steps} steps" if p.trainings > 1 else f"{p.steps} steps"
        lines.append(f"  {p.name}: {count} ({p.why})")
    return "\n".join(lines)


def _human(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def plan_note(backbone: Backbone, cfg: AddTaskConfig, sizes: dict[str, int]) -> str:
    """The plan and estimate for a task of ``sizes`` (train/val/test image counts; val carved when 0)."""
    from forkpoint.learner.task import profile_candidates

    n_train, n_val, n_test = sizes.get("train", 0), sizes.get("val", 0), sizes.get("test", 0)
    if not n_val:
        n_val = max(1, round(n_train * cfg.val_fraction))
        n_train -= n_val
    units = profile_candidates(backbone, cfg) if cfg.branch is None else []
    phases = plan_phases(cfg, n_train, n_val, units)
    return describe_plan(phases, estimate_seconds(backbone, cfg, phases, n_train, n_val, n_test, units))
