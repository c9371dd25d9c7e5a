"""SubTuning as an Avalanche strategy, and the exact no-forgetting check.

"Training" an experience is the learner's ``add_task`` (profile -> select -> train a
branch) on that experience's task; evaluation is Avalanche's own loop over the
:class:`SubTuningModule`, so SubTuning gets the same EvaluationPlugin metrics as every
baseline (:class:`PerTaskStrategy` is that shape for any task forkpoint's own code trains:
the linear probe and full finetuning baselines use it too). Branches persist through the
registry (safetensors), never through Avalanche checkpoints: a restore hook can hand back
a registered branch instead of training one (see scenarios.recording), which is how a
crashed stream resumes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.templates import SupervisedTemplate
from torch import nn

from forkpoint.learner import AddTaskConfig, Branch, MultiTaskModel, TaskReport, add_task
from forkpoint.contract.errors import ConfigError
from forkpoint.scenarios.models import SubTuningModule
from forkpoint.scenarios.streams import StreamTask


@dataclass
class ObtainedBranch:
    """How one experience's branch came to be: trained now (``report``) or restored from the registry.

    (Not ``workflows.tasks.AddedTask``, which is a registered version plus the served model.)
    """

    label: int
    name: str
    branch: Branch
    trainable_params: int
    seconds: float
    report: TaskReport | None = None
    restored_from: str | None = None  # "task@version" when restored
    registered_as: str | None = None  # "task@version" when recorded now




class TaskSource(Protocol):
    """Where an experience's branch comes from: trained now, or restored from the registry."""

    def obtain(self, model: MultiTaskModel, label: int, task: StreamTask) -> ObtainedBranch:
        """Add ``task``'s branch to ``model`` (only if nothing frozen moved) and say how it got there."""
        ...


@dataclass
class TrainLocally:
    """The learner's add_task, nothing recorded (runs without a registry)."""

    config: AddTaskConfig
    progress: object | None = None
    plot_dir: Path | None = None

    def obtain(self, model: MultiTaskModel, label: int, task: StreamTask) -> ObtainedBranch:
        t0 = time.perf_counter()
        report = add_task(model, task.name, task.task_data(), self.config, progress=self.progress, plot_dir=self.plot_dir)
        return ObtainedBranch(label, task.name, model.branches[task.name], report.trainable_params,
                              time.perf_counter() - t0, report=report)


class PerTaskStrategy(SupervisedTemplate):
    """An Avalanche strategy whose experiences are learned by forkpoint's own training, not Avalanche's SGD loop.

    Each experience adds one task to the model (:meth:`learn`); evaluation is Avalanche's
    own loop, so these strategies get the same EvaluationPlugin metrics as every other.
    """

    def __init__(self, *, model, tasks: list[StreamTask], evaluator, device: torch.device | str = "cpu",
                 eval_mb_size: int = 256, plugins: list | None = None) -> None:
        super().__init__(
            model=model, optimizer=None, criterion=nn.CrossEntropyLoss(), train_mb_size=eval_mb_size,
            train_epochs=1, eval_mb_size=eval_mb_size, device=device, plugins=plugins, evaluator=evaluator,
        )
        self.tasks = tasks
        self.seconds: list[float] = []  # training time of each experience's task

    def make_optimizer(self, **kwargs) -> None:
        """Nothing to optimise here: each task is trained by :meth:`learn` with its own optimizer."""

    def _train_exp(self, experience, eval_streams=None, **kwargs) -> None:
        task = self.tasks[experience.current_experience]
        self.seconds.append(self.learn(int(experience.task_label), task))

    def learn(self, label: int, task: StreamTask) -> float:
        """Add ``task`` to the model under ``label``; return the seconds it took."""
        raise NotImplementedError


class SubTuningStrategy(PerTaskStrategy):
    """Each experience adds one branch to the shared multi-task model (SubTuning's, or a linear probe's)."""

    def __init__(self, *, model: SubTuningModule, tasks: list[StreamTask], source: TaskSource, **kwargs) -> None:
        super().__init__(model=model, tasks=tasks, **kwargs)
        self.source = source
        self.added: list[ObtainedBranch] = []

    def learn(self, label: int, task: StreamTask) -> float:
        added = self.source.obtain(self.model.model, label, task)
        if added.name not in self.model.model.branches:
            raise ConfigError(f"task source did not add a branch for '{added.name}': report this as a bug")
        self.model.bind(label, added.name, added.trainable_params)
        self.added.append(added)
        return added.seconds


class NoForgettingCheck(SupervisedPlugin):
    """Old experiences' eval outputs must be bit-identical after every later task is added,
    and the trunk's and every earlier branch's fingerprints must not move.

    Compares the logits tensors (hence the predictions) of every re-evaluated experience
    with those recorded the first time it was evaluated; ``violations`` lists what broke.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reference: dict[int, torch.Tensor] = {}
        self.violations: list[str] = []
        self.comparisons = 0
        self.step = -1
        self._fingerprints: dict[str, str] = {}
        self._outputs: list[torch.Tensor] = []

    def before_training_exp(self, strategy, **kwargs) -> None:
        self._fingerprints = strategy.model.model.fingerprints()

    def after_training_exp(self, strategy, **kwargs) -> None:
        self.step += 1
        after = strategy.model.model.fingerprints()
        for key, value in self._fingerprints.items():
            self.comparisons += 1
            if after.get(key) != value:
                self.violations.append(f"fingerprint of {key} changed while adding experience {self.step}")

    def before_eval_exp(self, strategy, **kwargs) -> None:
        self._outputs = []

    def after_eval_iteration(self, strategy, **kwargs) -> None:
        self._outputs.append(strategy.mb_output.detach().to("cpu").clone())

    def after_eval_exp(self, strategy, **kwargs) -> None:
        exp = int(strategy.experience.current_experience)
        out = torch.cat(self._outputs) if self._outputs else torch.empty(0)
        ref = self.reference.get(exp)
        if ref is None:
            self.reference[exp] = out
            return
        self.comparisons += 1
        if ref.shape != out.shape:
            self.violations.append(f"experience {exp}: output shape {tuple(out.shape)} != {tuple(ref.shape)} after step {self.step}")
            return
        changed = (ref.argmax(1) != out.argmax(1)).sum().item()
        if changed:
            self.violations.append(f"experience {exp}: {changed} of {len(out)} predictions changed after step {self.step}")
        elif not torch.equal(ref, out):
            diff = (ref - out).abs().max().item()
            self.violations.append(f"experience {exp}: logits changed (max |diff| {diff:.3g}) after step {self.step}")
