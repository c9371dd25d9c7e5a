"""The baselines, each one of Avalanche's own strategies on the shared backbone.

naive/ewc/lwf/replay finetune one trainable copy of the backbone with a head per task
(they forget: that is what they are measured for); linear trains only a head per task
on the frozen trunk; full trains a whole fresh copy per task (no forgetting, the most
storage). All use the same optimizer settings from :class:`BaselineConfig`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from forkpoint.learner import Backbone
from forkpoint.contract.errors import ConfigError
from forkpoint.scenarios.models import PerTaskFullModels, SharedTrunkMultiHead, TaskLabelledModule

BASELINES = ("naive", "ewc", "lwf", "replay", "linear", "full")
STRATEGIES = ("subtuning",) + BASELINES


@dataclass(frozen=True)
class BaselineConfig:
    """Optimisation and regulariser settings shared by every baseline of a run."""

    epochs: int = 4
    lr: float = 1e-3
    head_lr: float = 1e-2  # linear probe: only a head learns, so it gets the larger rate
    batch_size: int = 32
    ewc_lambda: float = 1000.0
    lwf_alpha: float = 1.0
    lwf_temperature: float = 2.0
    replay_mem: int = 200
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"baseline epochs ({self.epochs}) and batch size ({self.batch_size}) must be >= 1")
        if self.lr <= 0 or self.head_lr <= 0:
            raise ConfigError(f"learning rates must be positive, got {self.lr} and {self.head_lr}")

    def to_dict(self) -> dict:
        return asdict(self)


def baseline_model(name: str, backbone: Backbone) -> TaskLabelledModule:
    if name == "linear":
        return SharedTrunkMultiHead(backbone, trainable=False)
    if name == "full":
        return PerTaskFullModels(backbone)
    return SharedTrunkMultiHead(backbone, trainable=True)


def make_baseline(name: str, backbone: Backbone, cfg: BaselineConfig, *, evaluator, device, plugins=None):
    """An Avalanche strategy instance for baseline ``name`` on a fresh model over ``backbone``."""
    from avalanche.training import EWC, LwF, Naive, Replay

    if name not in BASELINES:
        raise ConfigError(f"unknown strategy '{name}': use {', '.join(STRATEGIES)}")
    model = baseline_model(name, backbone)
    lr = cfg.head_lr if name == "linear" else cfg.lr
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    common = dict(
        model=model, optimizer=optimizer, criterion=nn.CrossEntropyLoss(), train_mb_size=cfg.batch_size,
        train_epochs=cfg.epochs, eval_mb_size=cfg.eval_batch_size, device=device, evaluator=evaluator,
        plugins=plugins,
    )
    if name == "ewc":
        return EWC(ewc_lambda=cfg.ewc_lambda, mode="separate", **common)
    if name == "lwf":
        return LwF(alpha=cfg.lwf_alpha, temperature=cfg.lwf_temperature, **common)
    if name == "replay":
        return Replay(mem_size=cfg.replay_mem, **common)
    return Naive(**common)
