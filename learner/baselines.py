"""The alternatives to SubTuning, defined once: full finetuning, the linear probe, LoRA.

The benchmarks (``benchmarks/``) and the Avalanche harness (``scenarios/``) both build and
train them from here, the learner's way: the linear probe is add_task's own probe fit;
LoRA branches train with the learner's ``fit``; full finetuning runs the same training loop
(:func:`forkpoint.learner.train.run_steps`: fused AdamW, the cosine step schedule, head at
``head_lr``, body at ``lr``, the same batch order for a seed, validation scored at the same
steps, the best state by accuracy then loss, the same early stopping). So a comparison measures *what* is trained,
not *how*, and the same images, config and seed give the same numbers in both places.

BatchNorm rule for full finetuning, the same as for a SubTuning branch: the private copy
runs in eval mode while it trains (BatchNorm keeps the pretrained statistics, dropout and
drop-path stay off) unless ``TrainConfig.bn_adapt`` lets its BatchNorm layers use and
update batch statistics, exactly as that flag does for a branch's copied units. Measured
before choosing (Lite0 at 48 px, MNIST and Fashion-MNIST at 50 and 10 images/class, 3 and
10 epochs, 2 seeds, the benchmarks' full-finetuning settings): frozen statistics averaged
80.7% test accuracy over the 10 runs, batch statistics 79.2% (frozen better in 9 of 10),
and plain ``model.train()`` (batch statistics plus timm's dropout) 66.4%. Small batches
make batch statistics noisy, and the copy starts from statistics that already fit it.
(The scenarios' Avalanche strategies, Naive/EWC/LwF/Replay, train their shared copy with
``bn_adapt=True``, as those methods are usually run: at their constant Adam rate of
3e-3, frozen statistics left Naive at chance on MNIST in the harness's test.)
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from forkpoint.contract.errors import ConfigError
from forkpoint.learner.backbone import Backbone
from forkpoint.learner.branch import Branch
from forkpoint.learner.cache import PrefixCache
from forkpoint.learner.densedw import dense_depthwise
from forkpoint.learner.device import inference_batch
from forkpoint.learner.probe import fit_probe
from forkpoint.learner.train import TrainConfig, accuracy, autocast_for, fit, run_steps

# (inputs, labels): inputs are backbone-ready images (N, 3, R, R) or, for branches, a PrefixCache of them
Labelled = tuple[torch.Tensor | PrefixCache, torch.Tensor]


@dataclass(frozen=True)
class BaselineFit:
    """How one baseline's training went (the model itself is returned next to it)."""

    val_acc: float
    seconds: float  # training, including its validation passes
    trainable_params: int
    val_loss: float = float("nan")  # at the kept state


# -- full finetuning ----------------------------------------------------------------------
class FinetunedCopy(nn.Module):
    """A private deep copy of the pretrained timm model, every weight trainable, -> pooled features.

    The frozen original is never touched. Dropout and drop-path stay off; BatchNorm keeps
    its statistics unless ``bn_adapt``, when its layers follow train/eval mode (the rule
    above). Kept channels-last: on CPU that trains Lite0's depthwise convolutions ~2.4x faster.
    """

    def __init__(self, backbone: Backbone, bn_adapt: bool = False) -> None:
        super().__init__()
        self.bn_adapt = bn_adapt
        self.model = copy.deepcopy(backbone.model).to(memory_format=torch.channels_last)
        self.model.requires_grad_(True)
        self.eval()

    def train(self, mode: bool = True) -> "FinetunedCopy":
        super().train(False)
        if self.bn_adapt and mode:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.train(True)
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)


class FullFinetune(nn.Module):
    """Full finetuning's model: a :class:`FinetunedCopy` plus a linear head."""

    def __init__(self, backbone: Backbone, num_classes: int, seed: int = 0, bn_adapt: bool = False) -> None:
        super().__init__()
        self.net = FinetunedCopy(backbone, bn_adapt)
        n = backbone.num_blocks
        # the head a learner branch with the same seed starts from
        self.head = Branch.new(backbone, n, n, num_classes, seed=seed).head
        self.head.requires_grad_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x))


@torch.no_grad()
def logits_of(module: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int | None = None) -> torch.Tensor:
    """Float32 logits of ``module`` (in eval mode) for every row of ``x``, on the CPU."""
    was_training = module.training
    module.eval()
    out = []
    batch_size = batch_size or inference_batch(device)
    try:
        with autocast_for(device):
            for i in range(0, len(x), batch_size):
                out.append(module(x[i:i + batch_size].to(device)).float().cpu())
    finally:
        module.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def predict(module: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int | None = None) -> torch.Tensor:
    return logits_of(module, x, device, batch_size).argmax(1)


def fit_full_finetune(
    backbone: Backbone, num_classes: int, train: Labelled, val: Labelled, cfg: TrainConfig, device: torch.device,
    epoch_size: int | None = None,
) -> tuple[FullFinetune, BaselineFit]:
    """Finetune every weight of a fresh copy, the learner's way; returns it at its best validation state.

    ``epoch_size`` as in :func:`forkpoint.learner.train.fit`: when ``train`` also holds
    augmented views, the schedule still counts the original images.
    """
    torch.manual_seed(cfg.seed)
    model = FullFinetune(backbone, num_classes, cfg.seed, cfg.bn_adapt).to(device)
    (x_train, y_train), (x_val, y_val) = train, val
    if not isinstance(x_train, torch.Tensor) or not isinstance(x_val, torch.Tensor):
        raise ConfigError("full finetuning trains on images, not on a prefix cache: pass the backbone-ready inputs")
    groups = [{"params": list(model.head.parameters()), "lr": cfg.head_lr}, {"params": list(model.net.parameters()), "lr": cfg.lr}]
    y_dev = y_train.to(device)

    def losses(order: torch.Tensor):
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            model.train(len(idx) > 1)  # BatchNorm batch statistics need two images; a lone last image uses the running ones
            with autocast_for(device):
                logits = model(x_train[idx].to(device))
            yield F.cross_entropy(logits.float(), y_dev[idx.to(device)], label_smoothing=cfg.label_smoothing), len(idx)

    def evaluate() -> tuple[float, float, None]:
        val_logits = logits_of(model, x_val, device)  # in eval mode, and puts the mode back
        return accuracy(val_logits.argmax(1), y_val), float(F.cross_entropy(val_logits, y_val.cpu())), None

    t0 = time.perf_counter()
    model.train()
    with dense_depthwise(model, device.type == "cpu"):  # the CPU kernels a branch trains with; scores run the convolutions
        run = run_steps(model, groups, cfg, epoch_size or len(x_train), len(x_train), losses, evaluate, device=device)
    seconds = time.perf_counter() - t0
    model.eval()
    keeper = run.keeper
    return model, BaselineFit(keeper.best[0], seconds, sum(p.numel() for p in model.parameters()), -keeper.best[1])


# -- branches: the linear probe and LoRA ------------------------------------------------------
def _cached(backbone: Backbone, data: Labelled, device: torch.device) -> tuple[PrefixCache, torch.Tensor]:
    x, y = data
    return (x if isinstance(x, PrefixCache) else PrefixCache(backbone, x, device)), y


def fit_linear_probe(backbone: Backbone, num_classes: int, train: Labelled, val: Labelled,
                     device: torch.device | None = None) -> tuple[Branch, BaselineFit]:
    """The learner's linear probe, as the empty branch (``start == stop == num_blocks``).

    The same fit add_task runs for its probe candidate (:func:`forkpoint.learner.probe.fit_probe`:
    a convex fit on the frozen trunk's features, L2 strength picked on validation), so no
    epochs or learning rate apply.
    """
    device = device or next(backbone.parameters()).device
    (c_train, y_train), (c_val, y_val) = _cached(backbone, train, device), _cached(backbone, val, device)
    t0 = time.perf_counter()
    probe = fit_probe(c_train.trunk_features(), y_train, c_val.trunk_features(), y_val, num_classes)
    n = backbone.num_blocks
    branch = Branch.new(backbone, n, n, num_classes)
    branch.init_head(probe.weight, probe.bias)
    return branch, BaselineFit(probe.val_acc, time.perf_counter() - t0, branch.num_params())


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


def fit_branch(backbone: Backbone, branch: Branch, train: Labelled, val: Labelled, cfg: TrainConfig,
               device: torch.device | None = None, epoch_size: int | None = None) -> BaselineFit:
    """Train a baseline branch (LoRA, a fixed unit range) in place, exactly as add_task trains a branch: the learner's fit.

    Pass PrefixCaches to share the frozen prefix's activations between methods on the same images;
    ``epoch_size`` as in :func:`forkpoint.learner.train.fit` (augmented views count as the originals).
    """
    device = device or next(backbone.parameters()).device
    (c_train, y_train), (c_val, y_val) = _cached(backbone, train, device), _cached(backbone, val, device)
    res = fit(backbone, branch, c_train, y_train, c_val, y_val, cfg, epoch_size=epoch_size)
    trainable = sum(p.numel() for p in branch.parameters() if p.requires_grad)
    return BaselineFit(res.val_acc, res.seconds, trainable, res.val_loss)
