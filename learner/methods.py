"""Every way of adding a task that forkpoint compares, named once, and how each is trained.

SubTuning is the learner's ``add_task``; its alternatives are built in :mod:`.baselines`
and trained here with SubTuning's care, so a comparison measures *what* is trained, not
*how*: the same final schedule (epochs, step floor, early stopping on validation), the
same augmented views of the same training images, and a learning rate picked on
validation from short runs on the profile's schedule (:mod:`.lrsearch`), as SubTuning
picks its units and its own rate. The benchmarks (``benchmarks.methods``) and the stream
harness (``scenarios.baselines``) are adapters over :data:`METHODS` and the trainers
below; Avalanche's continual-learning strategies (Naive, EWC, LwF, Replay) are
Avalanche's own and get SubTuning's schedule through ``scenarios.schedule``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from forkpoint.contract import recipe as shipped
from forkpoint.learner.augment import AugmentConfig, with_views
from forkpoint.learner.backbone import Backbone
from forkpoint.learner.baselines import BaselineFit, FullFinetune, fit_branch, fit_full_finetune
from forkpoint.learner.branch import Branch
from forkpoint.learner.cache import PrefixCache
from forkpoint.learner.config import AddTaskConfig
from forkpoint.learner.lrsearch import BRANCH_LRS, FULL_FT_LRS, LrChoice, pick_lr
from forkpoint.learner.train import TrainConfig


@dataclass(frozen=True)
class Method:
    """One way of adding a task: what it trains and the grid its rate is picked from (empty: no rate to pick)."""

    name: str
    trains: str
    lrs: tuple[float, ...] = ()


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("subtuning", "the branch add_task selects (profile, greedy, its rate from x1/x3) + head"),
    Method("subtuning-late", "a fixed branch on the last units + head", BRANCH_LRS),
    Method("linear-probe", "the head only, a convex fit on the frozen trunk's features"),
    Method("lora", "LoRA adapters on the units SubTuning chose + head", BRANCH_LRS),
    Method("full-ft", "every weight of a private backbone copy + head", FULL_FT_LRS),
)}


@dataclass(frozen=True)
class MethodRecipe:
    """How a trained alternative trains for one task: SubTuning's two schedules and views, its own head rate."""

    train: TrainConfig  # the final schedule (the body's rate is the one validation picks)
    search: TrainConfig  # the short runs that pick it (the profile's schedule)
    augment: AugmentConfig
    view_seed: int

    @classmethod
    def of(cls, cfg: AddTaskConfig, head_lr: float | None = None) -> "MethodRecipe":
        """The recipe ``add_task`` would train with under ``cfg`` (``head_lr``: the random head's rate)."""
        head = head_lr if head_lr is not None else cfg.train.head_lr
        return cls(replace(cfg.train, head_lr=head), replace(cfg.profile, head_lr=head), cfg.augment, cfg.split_seed)

    def views(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The originals followed by the augmented views add_task's final training sees, image for image."""
        return with_views(x, y, self.augment, self.view_seed)


@dataclass(frozen=True)
class Searched:
    """A trained alternative's final fit and the rate validation chose for it."""

    fit: BaselineFit
    choice: LrChoice


def train_branch(backbone: Backbone, make: Callable[[], Branch], images: torch.Tensor,
                 train: tuple[PrefixCache, torch.Tensor], val: tuple[PrefixCache, torch.Tensor],
                 recipe: MethodRecipe, lrs: tuple[float, ...] = BRANCH_LRS) -> tuple[Branch, Searched]:
    """A fixed-range or LoRA branch (``make()`` builds a fresh one): rate picked on validation, then trained on the views.

    ``images`` are the training split's backbone-ready images, ``train`` their prefix cache:
    only the views run the prefix again.
    """
    def trial(lr: float) -> tuple[float, float]:
        r = fit_branch(backbone, make(), train, val, replace(recipe.search, lr=lr))
        return r.val_acc, r.val_loss

    choice = pick_lr(lrs, trial)
    branch = make()
    cache, y = train
    xv, yv = recipe.views(images, y)
    if len(xv) > len(images):
        cache, y = cache.extended(xv[len(images):], branch.spec.start), yv
    fit = fit_branch(backbone, branch, (cache, y), val, replace(recipe.train, lr=choice.lr), epoch_size=len(images))
    return branch, Searched(fit, choice)


def train_full_finetune(backbone: Backbone, num_classes: int, train: tuple[torch.Tensor, torch.Tensor],
                        val: tuple[torch.Tensor, torch.Tensor], recipe: MethodRecipe, device: torch.device,
                        lrs: tuple[float, ...] = FULL_FT_LRS,
                        bn_adapt: bool = shipped.FULL_FT_BN_ADAPT) -> tuple[FullFinetune, Searched]:
    """A whole private copy: rate picked on validation from short runs, then trained on the views.

    ``bn_adapt``: full finetuning's own BatchNorm rule (``contract.recipe.FULL_FT_BN_ADAPT``,
    chosen on the development pool), not the branch's.
    """
    def trial(lr: float) -> tuple[float, float]:
        _, r = fit_full_finetune(backbone, num_classes, train, val, replace(recipe.search, lr=lr, bn_adapt=bn_adapt), device)
        return r.val_acc, r.val_loss

    choice = pick_lr(lrs, trial)
    model, fit = fit_full_finetune(backbone, num_classes, recipe.views(*train), val,
                                   replace(recipe.train, lr=choice.lr, bn_adapt=bn_adapt), device, epoch_size=len(train[1]))
    return model, Searched(fit, choice)
