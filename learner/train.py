"""Training one branch: AdamW, cosine schedule, early stopping on validation accuracy.

Inputs come from :class:`PrefixCache` at the branch's fork depth, so the frozen prefix
is never recomputed per epoch. The schedule is counted in optimizer steps: ``epochs`` is
what the user asks for, ``min_steps`` a floor so that two epochs of 200 images still
converge. Validation is scored a bounded number of times and the best state (accuracy,
then loss) is kept. Seeded and deterministic on CPU (and on CUDA, whose kernels
``device.resolve_device`` makes deterministic); training steps use bf16 autocast on CUDA,
scoring stays fp32.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from forkpoint.learner.backbone import Backbone
from forkpoint.learner.branch import Branch
from forkpoint.learner.cache import PrefixCache
from forkpoint.learner.densedw import dense_depthwise
from forkpoint.learner.device import inference_batch, synchronize
from forkpoint.contract.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8
    lr: float = 1e-3
    head_lr: float = 3e-3  # a random head learns faster than the copied blocks need to move
    weight_decay: float = 0.05
    batch_size: int = 64
    label_smoothing: float = 0.0
    patience: int = 3  # epochs without val improvement before stopping; 0 turns it off
    seed: int = 0
    # Score validation during training and keep the best state; profiles turn this off and
    # score only the end of their short schedule.
    keep_best_epoch: bool = True
    min_steps: int = 0  # optimizer steps at least, whatever epochs x batches gives
    max_evals: int = 12  # validation passes at most per fit (an eval every epoch when epochs are few)
    bn_adapt: bool = False  # the branch's private BatchNorm copies adapt their statistics to the task
    channels_last: bool = True  # NHWC convolutions: ~2x faster CPU training for the same numbers

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs ({self.epochs}) and batch size ({self.batch_size}) must be >= 1")
        if self.min_steps < 0 or self.max_evals < 1:
            raise ConfigError(f"min_steps ({self.min_steps}) must be >= 0 and max_evals ({self.max_evals}) >= 1")
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
    val_loss: float = float("nan")
    steps: int = 0
    val_correct: torch.Tensor | None = None  # bool per validation image at the kept state
    best_step: int = 0  # optimizer steps to the kept state


@dataclass(frozen=True)
class Scores:
    """A branch on one split: predictions, accuracy, mean loss and per-image correctness."""

    preds: torch.Tensor
    acc: float
    loss: float
    correct: torch.Tensor


def autocast_for(device: torch.device):
    """bf16 autocast for training steps on CUDA; scoring (``logits_of``) always runs in fp32,
    the precision ``predict`` and the server use, so recorded accuracies are what serving gives."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def branch_logits(backbone: Backbone, branch: Branch, h: torch.Tensor, trunk_feats: torch.Tensor | None) -> torch.Tensor:
    return branch.logits(branch.features(backbone, h), trunk_feats)


@torch.no_grad()
def logits_of(backbone: Backbone, branch: Branch, cache: PrefixCache, batch_size: int | None = None) -> torch.Tensor:
    """Float32 logits of ``branch`` for every image in ``cache``'s split (CPU), computed in
    fp32 on every device: validation scores and test accuracy are what fp32 serving reproduces."""
    trunk = cache.trunk_features() if branch.spec.siamese else None
    out = torch.empty(len(cache), branch.spec.num_classes)
    order = torch.arange(len(cache))
    with torch.autocast(cache.device.type, enabled=False):  # whatever context the caller is in
        for idx, h in cache.batches(branch.spec.start, order, batch_size or inference_batch(cache.device)):
            tf = trunk[idx.to(trunk.device)] if trunk is not None else None
            out[idx] = branch_logits(backbone, branch, h, tf).float().cpu()
    return out


def predict(backbone: Backbone, branch: Branch, cache: PrefixCache, batch_size: int | None = None) -> torch.Tensor:
    """Class predictions of ``branch`` for every image in ``cache``'s split."""
    return logits_of(backbone, branch, cache, batch_size).argmax(1)


def score(backbone: Backbone, branch: Branch, cache: PrefixCache, labels: torch.Tensor) -> Scores:
    logits = logits_of(backbone, branch, cache)
    labels = labels.cpu()
    correct = logits.argmax(1) == labels
    loss = float(F.cross_entropy(logits, labels)) if len(labels) else float("nan")
    return Scores(logits.argmax(1), accuracy(logits.argmax(1), labels), loss, correct)


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
    epoch_size: int | None = None,
) -> FitResult:
    """Train ``branch`` in place and leave it at its best validation state.

    ``on_epoch(k, val_acc)`` is called after each of the (at most ``max_evals``) validation
    passes; the number of passes is ``num_evals(cfg, epoch_size)``. ``epoch_size`` (default
    ``len(train)``) sets the schedule: a cache holding augmented views beside the originals
    passes the number of original images, so augmentation changes what steps see, not how many.
    """
    torch.manual_seed(cfg.seed)
    device = train.device
    groups = [{"params": [p for p in branch.head.parameters()], "lr": cfg.head_lr}]
    block_params = [p for p in branch.blocks.parameters() if p.requires_grad]
    if block_params:
        groups.append({"params": block_params, "lr": cfg.lr})
    trunk = train.trunk_features() if branch.spec.siamese else None
    y_train = y_train.to(device)
    fast = cfg.channels_last and device.type == "cpu"
    if fast:
        branch.to(memory_format=torch.channels_last)

    def losses(order: torch.Tensor) -> Iterator[tuple[torch.Tensor, int]]:
        for idx, h in train.batches(branch.spec.start, order, cfg.batch_size, channels_last=fast):
            tf = trunk[idx.to(trunk.device)] if trunk is not None else None
            branch.adapt_batchnorm(cfg.bn_adapt and len(idx) > 1)  # batch statistics need two images
            with autocast_for(device):
                logits = branch_logits(backbone, branch, h, tf)
            yield F.cross_entropy(logits.float(), y_train[idx.to(device)], label_smoothing=cfg.label_smoothing), len(idx)

    def evaluate() -> tuple[float, float, torch.Tensor]:
        branch.adapt_batchnorm(False)
        last = score(backbone, branch, val, y_val)
        return last.acc, last.loss, last.correct

    synchronize(device)
    t0 = time.perf_counter()
    try:
        with dense_depthwise(branch, device.type == "cpu"):  # training steps; scores run the convolutions
            run = run_steps(branch, groups, cfg, epoch_size or len(train), len(train), losses, evaluate, on_epoch, device)
    finally:
        branch.adapt_batchnorm(False)
        if fast:
            branch.to(memory_format=torch.contiguous_format)
    synchronize(device)
    keeper = run.keeper
    best_step = run.history[keeper.best_eval - 1]["step"] if keeper.best_eval else run.steps
    return FitResult(keeper.best[0], keeper.best_eval, keeper.evals, time.perf_counter() - t0, run.history, -keeper.best[1], run.steps,
                     keeper.extra, best_step)


@dataclass
class StepsRun:
    """How :func:`run_steps` went: the kept state's bookkeeping, the steps taken and the validation history."""

    keeper: "KeepBest"
    steps: int
    history: list[dict]


def run_steps(
    module: torch.nn.Module,
    groups: list[dict],
    cfg: TrainConfig,
    epoch_size: int,
    n_items: int,
    losses: Callable[[torch.Tensor], Iterator[tuple[torch.Tensor, int]]],
    evaluate: Callable[[], tuple[float, float, object]],
    on_eval: Callable[[int, float], None] | None = None,
    device: torch.device | None = None,
) -> StepsRun:
    """The one training loop every method runs: a branch (:func:`fit`), full finetuning (``baselines``).

    Fused AdamW over ``groups`` on a cosine schedule counted in optimizer steps
    (:func:`schedule` of ``epoch_size`` images); each pass draws a seeded shuffle of the
    ``n_items`` training items, and ``losses(order)`` yields each batch's (loss, size)
    in that order. ``evaluate()`` -> (val accuracy, val loss, extra) runs at fixed steps and
    at the end; the best state by (accuracy, -loss) is kept and restored in ``module``,
    and training stops once validation has not improved for ``cfg.patience`` passes.
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = adamw(groups, cfg.weight_decay)
    total_steps, eval_every = schedule(cfg, epoch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    keeper = KeepBest(cfg)
    history: list[dict] = []
    # the running loss stays on the device: reading it every step would sync CUDA each step
    step, seen = 0, 0
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    while step < total_steps:
        order = torch.randperm(n_items, generator=gen)
        for loss, n in losses(order):
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            total_loss += loss.detach().double() * n
            seen += n
            at_end = step >= total_steps
            if not (at_end or (cfg.keep_best_epoch and step % eval_every == 0)):
                continue
            acc, val_loss, extra = evaluate()
            history.append({"step": step, "loss": float(total_loss) / max(seen, 1), "val_acc": acc, "val_loss": val_loss})
            total_loss.zero_()
            seen = 0
            stop = keeper.update(module, (acc, -val_loss), at_end, extra)
            if on_eval is not None:
                on_eval(keeper.evals, acc)
            if stop:
                total_steps = step  # stop: validation stopped improving
            if step >= total_steps:
                break
    keeper.restore(module)
    return StepsRun(keeper, step, history)


class KeepBest:
    """The best validation state so far (accuracy, then loss) and patience-based early stopping.

    One definition for every training loop (branches here, full finetuning in ``baselines``).
    The last state is not copied: if it is the best, the module already holds it.
    """

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.best: tuple[float, float] = (float("-inf"), float("-inf"))
        self.best_eval = self.evals = self.stale = 0
        self.state: dict | None = None
        self.extra = None  # what the caller wants kept with the best state (per-image correctness)

    def update(self, module: torch.nn.Module, key: tuple[float, float], at_end: bool, extra=None) -> bool:
        """Record one validation pass; True when patience has run out."""
        self.evals += 1
        if self.evals == 1 or key > self.best:
            self.best, self.best_eval, self.stale, self.extra = key, self.evals, 0, extra
            self.state = None if at_end else copy.deepcopy(module.state_dict())
            return False
        self.stale += 1
        return bool(self.cfg.keep_best_epoch and self.cfg.patience and self.stale >= self.cfg.patience)

    def restore(self, module: torch.nn.Module) -> None:
        if self.state is not None and self.best_eval != self.evals:
            module.load_state_dict(self.state)


def adamw(groups: list[dict], weight_decay: float) -> torch.optim.AdamW:
    """AdamW as every training loop here builds it: one fused kernel per step for all parameters.

    PyTorch's default on the CPU is a Python loop over parameter tensors (``_single_tensor_adam``:
    15% of a small-batch branch step); the fused kernel does the same update in one call.
    """
    return torch.optim.AdamW(groups, weight_decay=weight_decay, fused=True)


def schedule(cfg: TrainConfig, n_train: int) -> tuple[int, int]:
    """(total optimizer steps, steps between validation passes)."""
    steps_per_epoch = max(1, math.ceil(n_train / cfg.batch_size))
    total = max(cfg.epochs * steps_per_epoch, cfg.min_steps)
    every = max(steps_per_epoch, math.ceil(total / cfg.max_evals))
    return total, every


def num_evals(cfg: TrainConfig, n_train: int) -> int:
    total, every = schedule(cfg, n_train)
    return total // every + (1 if total % every else 0) if cfg.keep_best_epoch else 1
