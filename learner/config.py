"""How a task is added, in one place: the config dataclass and the one builder every caller uses.

The CLI, the demo, the scenarios harness and the benchmarks all build their configs
with :func:`add_task_config`, so a default changes in exactly one spot. Unit ranges are
half-open :class:`UnitRange` values (the CLI converts its inclusive syntax at the boundary).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from forkpoint.contract import recipe
from forkpoint.contract.branch import UnitRange
from forkpoint.contract.errors import ConfigError
from forkpoint.learner.augment import AugmentConfig
from forkpoint.learner.select import SelectionConfig
from forkpoint.learner.train import TrainConfig


@dataclass(frozen=True)
class AddTaskConfig:
    """Everything that decides how a task is added (recorded with each task version)."""

    profile: TrainConfig = TrainConfig(epochs=recipe.PROFILE_EPOCHS, patience=0, keep_best_epoch=False,
                                       min_steps=recipe.PROFILE_MIN_STEPS, bn_adapt=recipe.BN_ADAPT)  # short, scored at its end
    train: TrainConfig = TrainConfig(epochs=recipe.EPOCHS, patience=recipe.PATIENCE, min_steps=recipe.MIN_STEPS,
                                     bn_adapt=recipe.BN_ADAPT)
    selection: SelectionConfig = SelectionConfig()
    candidates: UnitRange | None = None  # units to profile; None = the units within the cost budget
    branch: UnitRange | None = None  # fixed branch (UnitRange.probe(n) = head only); skips profile and selection
    siamese: bool = False
    # LP-FT (head starts from the fitted probe) measured worse than a random head at 3x the
    # blocks' rate on the same images (docs/ablation.md): off by default, kept as an option.
    lp_init: bool = False
    probe_candidate: bool = True  # the linear probe competes in selection and is the fallback
    augment: AugmentConfig = AugmentConfig(views=recipe.AUGMENT_VIEWS)  # cached augmented views for the final training
    cv_below_val: int = 30  # fewer validation images than this: branch vs probe by 3-fold cross-validation (~3 short trainings)
    cv_skip_z: float = recipe.CV_SKIP_Z  # ...unless validation alone shows the branch ahead by this many paired SEs (inf: always)
    val_fraction: float = 0.15
    split_seed: int = 0
    device: str = "auto"
    cache: bool = True
    cache_budget_mb: float | None = None  # per activation cache; None: the device's default (device.cache_budget_bytes)
    # Ray tasks that profile and score greedy options side by side (learner.parallel); 1 = in this
    # process. Same seeds, same choice and weights: recorded to say how a version ran, not what it is.
    workers: int = 1
    # Rates, as multiples of the blocks' and head's rate, the chosen branch is tried at on the
    # profile's short schedule before its final training; validation keeps the best (recipe 5).
    # The first (1.0) is the run selection already scored, so only the others cost a training.
    lr_factors: tuple[float, ...] = recipe.LR_FACTORS

    def __post_init__(self) -> None:
        if not self.lr_factors or any(f <= 0 for f in self.lr_factors):
            raise ConfigError(f"learning-rate factors {self.lr_factors} must be positive and at least one")
        if not (0.0 < self.val_fraction < 0.9):
            raise ConfigError(f"validation fraction {self.val_fraction} must be in (0, 0.9)")
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers} must be >= 1")
        for what, r in (("candidates", self.candidates), ("branch", self.branch)):
            if r is not None and not isinstance(r, UnitRange):
                raise ConfigError(f"{what} must be a UnitRange (half-open), got {r!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["candidates"] = [self.candidates.start, self.candidates.stop] if self.candidates is not None else None
        d["branch"] = [self.branch.start, self.branch.stop] if self.branch is not None else None
        d["lr_factors"] = list(self.lr_factors)
        return d


def add_task_config(
    *,
    epochs: int = recipe.EPOCHS,
    profile_epochs: int = recipe.PROFILE_EPOCHS,
    patience: int = recipe.PATIENCE,
    batch_size: int = recipe.BATCH,
    lr: float = recipe.LR,
    head_lr: float | None = None,
    min_steps: int = recipe.MIN_STEPS,
    profile_min_steps: int = recipe.PROFILE_MIN_STEPS,
    bn_adapt: bool = recipe.BN_ADAPT,
    augment_views: int = recipe.AUGMENT_VIEWS,
    flip: bool = False,
    eps: float = recipe.EPS,
    budget_blocks: int = recipe.MAX_BLOCKS,
    max_extra_cost: float = recipe.MAX_EXTRA_COST,
    free_growth: bool = recipe.FREE_GROWTH,
    seed: int = 0,
    **rest,
) -> AddTaskConfig:
    """The one way to build an :class:`AddTaskConfig` from flat options (CLI flags, settings).

    ``rest`` passes straight to AddTaskConfig (branch, candidates, siamese, device, ...).
    """
    # A random head trains at 3x the blocks' rate; a head that starts from the probe
    # (lp_init=True) at the blocks' rate, since 3x undid the probe on small tasks.
    lp_init = bool(rest.get("lp_init", False))
    head_lr = head_lr if head_lr is not None else (lr if lp_init else recipe.HEAD_LR_FACTOR * lr)
    common = dict(batch_size=batch_size, lr=lr, head_lr=head_lr, seed=seed, bn_adapt=bn_adapt)
    return AddTaskConfig(
        profile=TrainConfig(epochs=profile_epochs, patience=0, keep_best_epoch=False, min_steps=profile_min_steps, **common),
        train=TrainConfig(epochs=epochs, patience=patience, min_steps=min_steps, **common),
        selection=SelectionConfig(eps=eps, max_blocks=budget_blocks, max_extra_cost=max_extra_cost, free_growth=free_growth),
        augment=AugmentConfig(views=augment_views, flip=flip),
        split_seed=seed,
        **rest,
    )


def with_training(cfg: AddTaskConfig, **changes) -> AddTaskConfig:
    """The same config with both schedules changed alike (profile keeps its scoring rule)."""
    return replace(cfg, profile=replace(cfg.profile, **changes), train=replace(cfg.train, **changes))


__all__ = ["AddTaskConfig", "add_task_config", "with_training"]
