"""The alternatives a user would pick instead of SubTuning, trained the learner's way.

Full finetuning and LoRA use the learner's optimiser recipe (AdamW, cosine schedule,
same learning rates, epochs, batch order and best-validation-epoch selection) so the
comparison measures *what* is trained, not *how*. BatchNorm statistics stay frozen
everywhere, as in the learner's branches.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from forkpoint.learner import Branch
from forkpoint.learner.backbone import Backbone
from forkpoint.contract.errors import ConfigError
from forkpoint.learner.train import TrainConfig, accuracy, autocast_for


@dataclass(frozen=True)
class EndToEndResult:
    val_acc: float
    test_acc: float
    epochs_run: int
    seconds: float  # training (incl. per-epoch validation), as fit() measures it
    trainable_params: int


class FullFinetune(nn.Module):
    """Every weight of a private copy of the backbone trainable, plus a linear head."""

    def __init__(self, backbone: Backbone, num_classes: int, seed: int = 0) -> None:
        super().__init__()
        self.net = Backbone(copy.deepcopy(backbone.model), backbone.arch, backbone.weights_source, backbone.resolution,
                            backbone.mean, backbone.std)
        for p in self.net.parameters():
            p.requires_grad_(True)
        # same head initialisation as a learner branch with the same seed
        self.head = Branch.new(backbone, backbone.num_blocks, backbone.num_blocks, num_classes, seed=seed).head
        self.head.weight.requires_grad_(True)
        self.head.bias.requires_grad_(True)

    def train(self, mode: bool = True) -> "FullFinetune":
        """BatchNorm statistics stay frozen (the learner's branches do the same)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x))


@torch.no_grad()
def _predict(module: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    preds = []
    with autocast_for(device):
        for i in range(0, len(x), batch_size):
            preds.append(module(x[i:i + batch_size].to(device)).argmax(1).cpu())
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def fit_full_finetune(
    backbone: Backbone,
    num_classes: int,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    cfg: TrainConfig,
    device: torch.device,
) -> EndToEndResult:
    """Full finetuning with the learner's recipe: body at ``cfg.lr``, head at ``cfg.head_lr``."""
    torch.manual_seed(cfg.seed)
    model = FullFinetune(backbone, num_classes, cfg.seed).to(device)
    x_train, y_train = train
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(
        [{"params": list(model.head.parameters()), "lr": cfg.head_lr}, {"params": list(model.net.parameters()), "lr": cfg.lr}],
        weight_decay=cfg.weight_decay,
    )
    steps = math.ceil(len(x_train) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps)
    y_dev = y_train.to(device)
    best, best_state, stale, epoch = -1.0, None, 0, 0
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            with autocast_for(device):
                logits = model(x_train[idx].to(device))
            loss = F.cross_entropy(logits.float(), y_dev[idx.to(device)], label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = accuracy(_predict(model, val[0], device), val[1])
        if acc > best:
            best, stale = acc, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if cfg.patience and stale >= cfg.patience:
                break
    seconds = time.perf_counter() - t0
    if best_state is not None:
        model.load_state_dict(best_state)
    test_acc = accuracy(_predict(model, test[0], device), test[1])
    params = sum(p.numel() for p in model.parameters())
    return EndToEndResult(best, test_acc, epoch, seconds, params)


def lora_targets(blocks: nn.Module) -> list[str]:
    """Dense layers LoRA can wrap: Linear and ungrouped Conv2d.

    peft's LoRA on a grouped conv needs the rank divisible by the group count, which a
    depthwise conv (groups = channels) rules out, so depthwise convs stay frozen.
    """
    return [
        name for name, m in blocks.named_modules()
        if isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1)
    ]


def lora_branch(backbone: Backbone, start: int, stop: int, num_classes: int, rank: int, seed: int = 0) -> Branch:
    """A learner branch whose copied units carry LoRA adapters (HF peft) instead of being tuned in full."""
    from peft import LoraConfig, inject_adapter_in_model

    branch = Branch.new(backbone, start, stop, num_classes, seed=seed)
    targets = lora_targets(branch.blocks)
    if not targets:
        raise ConfigError(f"units {start}:{stop} of {backbone.arch} hold no Linear or ungrouped Conv2d for LoRA: pick other units")
    torch.manual_seed(seed)  # peft draws lora_A with the global generator
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets), branch.blocks)
    for name, p in branch.blocks.named_parameters():
        p.requires_grad_("lora_" in name)
    return branch.to(next(backbone.parameters()).device)
