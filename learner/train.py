"""Training one branch: AdamW, cosine schedule, early stopping on validation accuracy.

Inputs come from :class:`PrefixCache` at the branch's fork depth, so the frozen prefix
is never recomputed per epoch. Seeded and deterministic on CPU; bf16 autocast on CUDA.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from forkpoint.learner.backbone import Backbone
from forkpoint.learner.branch import Branch
from forkpoint.learner.cache import PrefixCache
from forkpoint.contract.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8
    lr: float = 1e-3
    head_lr: float = 3e-3
    weight_decay: float = 0.05
    batch_size: int = 64
    label_smoothing: float = 0.0
    patience: int = 3  # epochs without val improvement before stopping; 0 turns it off
    seed: int = 0
    # Score validation after every epoch and keep the best one; profiles turn this off and
    # score only the last epoch, which halves their cost on short schedules.
    keep_best_epoch: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs ({self.epochs}) and batch size ({self.batch_size}) must be >= 1")
        if not (0.0 <= self.label_smoothing < 1.0):
            raise ConfigError(f"label smoothing {self.label_smoothing} must be in [0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FitResult:
    val_acc: float
    best_epoch: int
    epochs_run: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU; an explicit 'cuda' without a GPU is an error."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu or auto")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ConfigError(f"unknown device '{name}': use auto, cpu or cuda")
    return torch.device(name)


def autocast_for(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def branch_logits(backbone: Backbone, branch: Branch, h: torch.Tensor, trunk_feats: torch.Tensor | None) -> torch.Tensor:
    return branch.logits(branch.features(backbone, h), trunk_feats)


@torch.no_grad()
def predict(backbone: Backbone, branch: Branch, cache: PrefixCache, batch_size: int = 256) -> torch.Tensor:
    """Class predictions of ``branch`` for every image in ``cache``'s split."""
    device = cache.device
    trunk = cache.trunk_features() if branch.spec.siamese else None
    preds = torch.empty(len(cache), dtype=torch.long)
    order = torch.arange(len(cache))
    with autocast_for(device):
        for idx, h in cache.batches(branch.spec.start, order, batch_size):
            tf = trunk[idx.to(trunk.device)] if trunk is not None else None
            preds[idx] = branch_logits(backbone, branch, h, tf).argmax(1).cpu()
    return preds


def accuracy(preds: torch.Tensor, labels: torch.Tensor) -> float:
    return float((preds == labels).float().mean()) if len(labels) else float("nan")


def fit(
    backbone: Backbone,
    branch: Branch,
    train: PrefixCache,
    y_train: torch.Tensor,
    val: PrefixCache,
    y_val: torch.Tensor,
    cfg: TrainConfig,
    on_epoch: Callable[[int, float], None] | None = None,
) -> FitResult:
    """Train ``branch`` in place and leave it at its best validation epoch."""
    torch.manual_seed(cfg.seed)
    device = train.device
    gen = torch.Generator().manual_seed(cfg.seed)
    groups = [{"params": [p for p in branch.head.parameters()], "lr": cfg.head_lr}]
    block_params = [p for p in branch.blocks.parameters() if p.requires_grad]
    if block_params:
        groups.append({"params": block_params, "lr": cfg.lr})
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    trunk = train.trunk_features() if branch.spec.siamese else None
    y_train = y_train.to(device)

    best, best_epoch, best_state, stale = -1.0, 0, None, 0
    history: list[dict] = []
    t0 = time.perf_counter()
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(len(train), generator=gen)
        total_loss = 0.0
        for idx, h in train.batches(branch.spec.start, order, cfg.batch_size):
            tf = trunk[idx.to(trunk.device)] if trunk is not None else None
            with autocast_for(device):
                logits = branch_logits(backbone, branch, h, tf)
            loss = F.cross_entropy(logits.float(), y_train[idx.to(device)], label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss.detach()) * len(idx)
        if not cfg.keep_best_epoch and epoch < cfg.epochs:
            history.append({"epoch": epoch, "loss": total_loss / len(train), "val_acc": None})
            continue
        acc = accuracy(predict(backbone, branch, val), y_val)
        history.append({"epoch": epoch, "loss": total_loss / len(train), "val_acc": acc})
        if on_epoch is not None:
            on_epoch(epoch, acc)
        if acc > best:
            best, best_epoch, stale = acc, epoch, 0
            best_state = copy.deepcopy(branch.state_dict())
        else:
            stale += 1
            if cfg.patience and stale >= cfg.patience:
                break
    if best_state is not None:
        branch.load_state_dict(best_state)
    return FitResult(best, best_epoch, epoch, time.perf_counter() - t0, history)
