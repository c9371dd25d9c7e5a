"""The baselines of a stream run, next to SubTuning on the same backbone and images.

naive/ewc/lwf/replay are Avalanche's own strategies: they finetune one shared trainable
copy of the backbone with a head per task (they forget: that is what they are measured
for), all with the same optimizer settings from :class:`BaselineConfig`.

linear and full are the learner's baselines (:mod:`forkpoint.learner.baselines`, the code
the benchmarks run): ``linear`` fits the learner's linear probe per task, ``full``
finetunes a whole fresh copy per task with SubTuning's own training schedule. Both carve
validation images from each task's training images exactly as add_task does (same
fraction, same seed), so all three see the same training and validation images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from forkpoint.contract.errors import ConfigError
from forkpoint.learner import Backbone, MultiTaskModel, TrainConfig
from forkpoint.learner.baselines import Labelled, fit_full_finetune, fit_linear_probe
from forkpoint.learner.data import check_labels, stratified_split, to_input
from forkpoint.scenarios.models import PerTaskFullModels, SharedTrunkMultiHead, SubTuningModule
from forkpoint.scenarios.streams import StreamTask
from forkpoint.scenarios.subtuning import ObtainedBranch, PerTaskStrategy, SubTuningStrategy

AVALANCHE_BASELINES = ("naive", "ewc", "lwf", "replay")
BASELINES = AVALANCHE_BASELINES + ("linear", "full")
STRATEGIES = ("subtuning",) + BASELINES


@dataclass(frozen=True)
class BaselineConfig:
    """Settings shared by every baseline of a run.

    ``recipe`` is how the learner's baselines train (SubTuning's own schedule, the run's
    learning rate); the rest drives Avalanche's strategies.
    """

    epochs: int = 4
    lr: float = 1e-3
    batch_size: int = 32
    ewc_lambda: float = 1000.0
    lwf_alpha: float = 1.0
    lwf_temperature: float = 2.0
    replay_mem: int = 200
    eval_batch_size: int = 256
    recipe: TrainConfig = field(default_factory=TrainConfig)
    val_fraction: float = 0.15
    split_seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"baseline epochs ({self.epochs}) and batch size ({self.batch_size}) must be >= 1")
        if self.lr <= 0:
            raise ConfigError(f"the learning rate must be positive, got {self.lr}")

    def to_dict(self) -> dict:
        return asdict(self)


def train_val(task: StreamTask, backbone: Backbone, cfg: BaselineConfig) -> tuple[Labelled, Labelled]:
    """Backbone-ready training and validation images of ``task``, split as add_task splits them."""
    data = task.task_data()
    x = to_input(data.train.images, backbone.resolution, backbone.mean, backbone.std)
    y = check_labels(data.train.labels, len(data.class_names), "train")
    tr, va = stratified_split(y, cfg.val_fraction, cfg.split_seed)
    return (x[tr], y[tr]), (x[va], y[va])


@dataclass
class LinearProbes:
    """A TaskSource that fits the learner's linear probe for each experience (a head-only branch)."""

    config: BaselineConfig

    def obtain(self, model: MultiTaskModel, label: int, task: StreamTask) -> ObtainedBranch:
        train, val = train_val(task, model.backbone, self.config)
        branch, fit = fit_linear_probe(model.backbone, len(task.class_names), train, val)
        model.add(task.name, branch, task.class_names)
        return ObtainedBranch(label, task.name, model.branches[task.name], fit.trainable_params, fit.seconds)


class FullFinetuneStrategy(PerTaskStrategy):
    """Each experience finetunes a whole fresh copy of the backbone (``learner.baselines``), then serves it frozen."""

    def __init__(self, *, backbone: Backbone, config: BaselineConfig, **kwargs) -> None:
        super().__init__(model=PerTaskFullModels(), **kwargs)
        self.backbone, self.config = backbone, config

    def learn(self, label: int, task: StreamTask) -> float:
        train, val = train_val(task, self.backbone, self.config)
        model, fit = fit_full_finetune(self.backbone, len(task.class_names), train, val, self.config.recipe, self.device)
        self.model.add(label, model, fit.trainable_params)
        return fit.seconds


def make_baseline(name: str, backbone: Backbone, cfg: BaselineConfig, tasks: list[StreamTask], *, evaluator, device,
                  plugins=None):
    """An Avalanche strategy instance for baseline ``name`` on a fresh model over ``backbone``."""
    if name not in BASELINES:
        raise ConfigError(f"unknown strategy '{name}': use {', '.join(STRATEGIES)}")
    own = dict(tasks=tasks, evaluator=evaluator, device=device, eval_mb_size=cfg.eval_batch_size, plugins=plugins)
    if name == "linear":
        return SubTuningStrategy(model=SubTuningModule(MultiTaskModel(backbone)), source=LinearProbes(cfg), **own)
    if name == "full":
        return FullFinetuneStrategy(backbone=backbone, config=cfg, **own)

    from avalanche.training import EWC, LwF, Naive, Replay

    model = SharedTrunkMultiHead(backbone)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
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
