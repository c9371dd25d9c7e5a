"""The baselines of a stream run, next to SubTuning on the same backbone and images.

naive/ewc/lwf/replay are Avalanche's own strategies: they finetune one shared trainable
copy of the backbone with a head per task (they forget: that is what they are measured
for). They train on SubTuning's schedule (``scenarios.schedule``: its optimizer steps per
task, AdamW, cosine, early stopping on each task's carved validation images), on the
same training images and augmented views; EWC's lambda and LwF's alpha and temperature
are picked from :class:`BaselineConfig`'s grids by the mean validation accuracy over all
tasks at the end of the stream (the runner tries each), never by test images.

linear and full are the learner's methods (:mod:`forkpoint.learner.methods`, the code
the benchmarks run): ``linear`` fits the learner's linear probe per task, ``full``
finetunes a whole fresh copy per task with SubTuning's schedule and views at a rate
picked on validation. All carve validation images from each task's training images
exactly as add_task does (same fraction, same seed), so every strategy sees the same
training and validation images.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
from torch import nn

from forkpoint.contract.errors import ConfigError
from forkpoint.learner import Backbone, MultiTaskModel
from forkpoint.learner.baselines import Labelled, fit_linear_probe
from forkpoint.learner.methods import METHODS, MethodRecipe, train_full_finetune
from forkpoint.scenarios.benchmark import Split, task_splits
from forkpoint.scenarios.models import PerTaskFullModels, SharedTrunkMultiHead, SubTuningModule
from forkpoint.scenarios.streams import StreamTask
from forkpoint.scenarios.subtuning import ObtainedBranch, PerTaskStrategy, SubTuningStrategy

AVALANCHE_BASELINES = ("naive", "ewc", "lwf", "replay")
LEARNER_BASELINES = {"linear": "linear-probe", "full": "full-ft"}  # harness name -> learner.methods.METHODS
BASELINES = AVALANCHE_BASELINES + tuple(LEARNER_BASELINES)
STRATEGIES = ("subtuning",) + BASELINES
# Grids a decade or two wide around Avalanche's usual values; the runner trains each and keeps
# the best mean validation accuracy over all tasks after the last one.
EWC_LAMBDAS = (1e2, 1e3, 1e4)
LWF_SETTINGS = ((1.0, 2.0), (0.5, 2.0), (2.0, 2.0), (1.0, 1.0))  # (alpha, temperature)


@dataclass(frozen=True)
class BaselineConfig:
    """Settings shared by every baseline of a run.

    ``recipe`` is how every baseline trains: SubTuning's schedules and views, with the run's
    learning rate for the Avalanche strategies' trunk (``full`` picks its own on validation).
    """

    recipe: MethodRecipe
    batch_size: int = 32
    ewc_lambdas: tuple[float, ...] = EWC_LAMBDAS
    lwf_settings: tuple[tuple[float, float], ...] = LWF_SETTINGS
    replay_mem: int = 200
    eval_batch_size: int = 256
    val_fraction: float = 0.15
    split_seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"baseline batch size ({self.batch_size}) must be >= 1")
        if self.recipe.train.lr <= 0:
            raise ConfigError(f"the learning rate must be positive, got {self.recipe.train.lr}")
        if not self.ewc_lambdas or any(v < 0 for v in self.ewc_lambdas):
            raise ConfigError(f"EWC lambdas {self.ewc_lambdas} must be at least one value >= 0")
        if not self.lwf_settings or any(a < 0 or t <= 0 for a, t in self.lwf_settings):
            raise ConfigError(f"LwF settings {self.lwf_settings} must be (alpha >= 0, temperature > 0) pairs")

    def trials(self, name: str) -> list[dict]:
        """The settings the runner tries for strategy ``name`` (one empty setting: nothing to pick)."""
        if name == "ewc":
            return [{"ewc_lambda": v} for v in self.ewc_lambdas]
        if name == "lwf":
            return [{"alpha": a, "temperature": t} for a, t in self.lwf_settings]
        return [{}]

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))  # tuples as lists: what a resumed run reads back


def train_val(task: StreamTask, backbone: Backbone, cfg: BaselineConfig) -> tuple[Labelled, Labelled]:
    """Backbone-ready training and validation images of ``task``, split as add_task splits them."""
    return task_splits(task, backbone, cfg.val_fraction, cfg.split_seed)


@dataclass(frozen=True)
class StreamSplits:
    """Every task's images as the Avalanche baselines see them."""

    train: list[Split]  # the carved training split followed by its augmented views: what an experience holds
    val: list[Split]  # the carved validation split: early stopping and the choice of settings
    originals: list[int]  # original training images per task: what the step schedule counts


def stream_splits(tasks: list[StreamTask], backbone: Backbone, cfg: BaselineConfig) -> StreamSplits:
    train, val, originals = [], [], []
    for task in tasks:
        (x, y), v = train_val(task, backbone, cfg)
        train.append(cfg.recipe.views(x, y))
        val.append(v)
        originals.append(len(y))
    return StreamSplits(train, val, originals)


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
    """Each experience finetunes a whole fresh copy of the backbone (``learner.methods``), then serves it frozen."""

    def __init__(self, *, backbone: Backbone, config: BaselineConfig, **kwargs) -> None:
        super().__init__(model=PerTaskFullModels(), **kwargs)
        self.backbone, self.config = backbone, config
        self.choices: list[dict] = []  # per task: the rate validation chose and its trials

    def learn(self, label: int, task: StreamTask) -> float:
        train, val = train_val(task, self.backbone, self.config)
        model, searched = train_full_finetune(self.backbone, len(task.class_names), train, val, self.config.recipe,
                                              self.device, METHODS["full-ft"].lrs)
        self.model.add(label, model, searched.fit.trainable_params)
        self.choices.append(searched.choice.to_dict())
        return searched.fit.seconds + searched.choice.seconds


def make_baseline(name: str, backbone: Backbone, cfg: BaselineConfig, tasks: list[StreamTask], *, evaluator, device,
                  plugins=None, setting: dict | None = None):
    """An Avalanche strategy instance for baseline ``name`` on a fresh model over ``backbone``.

    ``setting`` is one of ``cfg.trials(name)`` (EWC's lambda, LwF's alpha and temperature).
    The optimizer built here is a placeholder: ``scenarios.schedule.StepSchedule`` (which the
    runner adds) replaces it at every experience.
    """
    if name not in BASELINES:
        raise ConfigError(f"unknown strategy '{name}': use {', '.join(STRATEGIES)}")
    own = dict(tasks=tasks, evaluator=evaluator, device=device, eval_mb_size=cfg.eval_batch_size, plugins=plugins)
    if name == "linear":
        return SubTuningStrategy(model=SubTuningModule(MultiTaskModel(backbone)), source=LinearProbes(cfg), **own)
    if name == "full":
        return FullFinetuneStrategy(backbone=backbone, config=cfg, **own)

    from avalanche.training import EWC, LwF, Naive, Replay

    setting = setting or cfg.trials(name)[0]
    model = SharedTrunkMultiHead(backbone)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.recipe.train.lr)
    common = dict(
        model=model, optimizer=optimizer, criterion=nn.CrossEntropyLoss(), train_mb_size=cfg.batch_size,
        train_epochs=1, eval_mb_size=cfg.eval_batch_size, device=device, evaluator=evaluator, plugins=plugins,
    )
    if name == "ewc":
        return EWC(ewc_lambda=setting["ewc_lambda"], mode="separate", **common)
    if name == "lwf":
        return LwF(alpha=setting["alpha"], temperature=setting["temperature"], **common)
    if name == "replay":
        return Replay(mem_size=cfg.replay_mem, **common)
    return Naive(**common)
