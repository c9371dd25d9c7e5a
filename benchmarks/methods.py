"""The five ways to add a task that the accuracy benchmark compares, behind one call each.

* ``subtuning``: the learner's own ``add_task`` (profile, greedy selection, train);
* ``subtuning-late``: ``add_task`` with a fixed branch on the last units (no selection);
* ``linear-probe``: an empty branch (head only) on the frozen trunk's features;
* ``lora``: LoRA adapters (peft) on the units SubTuning trained (the late units when it
  trained none), plus a head;
* ``full-ft``: every weight of a private backbone copy.

The methods are the learner's registry (``learner.methods.METHODS``) and are trained by
its trainers (``train_branch``, ``train_full_finetune``), the same code the scenarios
harness runs: SubTuning's step budget, early stopping on validation and augmented views,
and a learning rate picked on validation from short runs on the profile's schedule, as
SubTuning picks its units. This module only shares prefix caches between methods and
scores test images. Their ``seconds`` are the final training's; the search's seconds are
kept beside them (``search_seconds``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Callable

import torch

from forkpoint.benchmarks.datasets import TaskSample
from forkpoint.benchmarks.settings import BenchSettings
from forkpoint.contract.branch import UnitRange
from forkpoint.learner import AddTaskConfig, Branch, MultiTaskModel, TrainConfig, add_task, add_task_config
from forkpoint.learner import baselines
from forkpoint.learner.backbone import Backbone
from forkpoint.learner.cache import PrefixCache
from forkpoint.learner.device import inference_batch
from forkpoint.learner.lrsearch import BRANCH_LRS
from forkpoint.learner.methods import METHODS as LEARNER_METHODS
from forkpoint.learner.methods import MethodRecipe, Searched, train_branch, train_full_finetune
from forkpoint.learner.task import profile_candidates
from forkpoint.learner.train import accuracy, predict

METHODS = tuple(LEARNER_METHODS)  # the learner's registry, in its order


@dataclass(frozen=True)
class MethodResult:
    method: str
    test_acc: float
    val_acc: float
    seconds: float
    trainable_params: int
    start: int  # first tuned unit (num_blocks for a linear probe / full_ft: 0)
    stop: int
    trained: list[int] | None = None  # subtuning: [start, stop) of the branch it trained (it may serve the probe instead)
    phases: dict[str, float] | None = None  # subtuning: add_task's seconds per phase (learner.task timings)
    lr: float | None = None  # trained baselines: the body's rate validation chose
    search_seconds: float = 0.0  # trained baselines: the short runs that chose ``lr`` (not in ``seconds``)
    lr_trials: list[dict] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def subtuning_config(s: BenchSettings, n_train: int, seed: int = 0, **rest) -> AddTaskConfig:
    """How the benchmarks add a task: the learner's one config builder with its defaults (what a user gets).

    Only the run's sizes are set here (epochs, batch, budgets); the step floors, early
    stopping on validation, the probe's head (LP-FT) and the probe candidate are the
    product's defaults. ``rest`` goes to the builder (candidates, branch, cache, ...).
    """
    return add_task_config(epochs=s.train_epochs, profile_epochs=s.profile_epochs, batch_size=s.batch_for(n_train),
                           lr=s.lr, budget_blocks=s.max_blocks, max_extra_cost=s.max_extra_cost, seed=seed,
                           device=s.device, **rest)


def recipe(s: BenchSettings, n_train: int, seed: int = 0) -> MethodRecipe:
    """The baselines' recipe (``learner.methods``): SubTuning's schedules and views for this sample, heads at ``head_lr``."""
    return MethodRecipe.of(subtuning_config(s, n_train, seed), s.head_lr)


def train_config(s: BenchSettings, n_train: int, epochs: int | None = None, seed: int = 0, lr: float | None = None) -> TrainConfig:
    """The baselines' final schedule (SubTuning's: same epochs, step floor, early stopping on validation)."""
    cfg = recipe(s, n_train, seed).train
    return replace(cfg, epochs=epochs or cfg.epochs, lr=lr or cfg.lr)


def _searched(result: MethodResult, searched: Searched) -> MethodResult:
    choice = searched.choice
    return replace(result, lr=choice.lr, search_seconds=choice.seconds, lr_trials=choice.to_dict()["trials"])


def affordable_units(bb: Backbone, s: BenchSettings) -> UnitRange:
    """The units add_task profiles under the run's cost budget (the learner's own filter, ``profile_candidates``)."""
    units = profile_candidates(bb, add_task_config(budget_blocks=s.max_blocks, max_extra_cost=s.max_extra_cost))
    return UnitRange(units[0], units[-1] + 1)


def run_subtuning(model: MultiTaskModel, task: str, sample: TaskSample, s: BenchSettings) -> MethodResult:
    """``add_task`` on ``model`` (the task stays attached: the forgetting benchmark reads it back)."""
    r = add_task(model, task, sample.task_data(), subtuning_config(s, len(sample.train[1]), sample.seed))
    final = [c for c in r.greedy if c.stage == "final"]  # the trained branch, when the probe was served instead
    trained = [final[-1].start, final[-1].stop] if final else [r.spec.start, r.spec.stop]
    # like the baselines' seconds, without the test scoring (one prefix pass over the test images, timed apart)
    phases = {k.removesuffix("_s"): v for k, v in r.timings.items() if k != "total_s"}
    return MethodResult("subtuning", float(r.test_acc), r.val_acc, r.timings["total_s"] - r.timings["test_s"], r.trainable_params,
                        r.spec.start, r.spec.stop, trained, phases)


class SampleCaches:
    """Prefix caches of one sample's splits, shared by the branch-shaped methods.

    Sharing only saves the frozen prefix's recomputation between methods; each method
    still trains from scratch. (``add_task`` builds its own caches, as a user's call would.)
    """

    def __init__(self, bb: Backbone, sample: TaskSample) -> None:
        device = next(bb.parameters()).device
        data = sample.inputs(bb.resolution, bb.mean, bb.std)
        self.labels = {k: data[k][1] for k in data}
        self.inputs = data
        self.caches = {k: PrefixCache(bb, data[k][0], device) for k in data}


def _scored_branch(bb: Backbone, branch: Branch, caches: SampleCaches, searched: Searched, method: str) -> MethodResult:
    fit = searched.fit
    test_acc = accuracy(predict(bb, branch, caches.caches["test"]), caches.labels["test"])
    return _searched(MethodResult(method, test_acc, fit.val_acc, fit.seconds, fit.trainable_params, branch.spec.start,
                                  branch.spec.stop), searched)


def _searched_branch(bb: Backbone, sample: TaskSample, s: BenchSettings, caches: SampleCaches,
                     make: Callable[[], Branch], method: str, lrs: tuple[float, ...] = BRANCH_LRS) -> MethodResult:
    """``learner.methods.train_branch`` on the sample's shared caches, scored on its test split."""
    c, y = caches.caches, caches.labels
    branch, searched = train_branch(bb, make, caches.inputs["train"][0], (c["train"], y["train"]), (c["val"], y["val"]),
                                    recipe(s, len(y["train"]), sample.seed), lrs)
    return _scored_branch(bb, branch, caches, searched, method)


def run_fixed_branch(bb: Backbone, sample: TaskSample, s: BenchSettings, caches: SampleCaches,
                     start: int, stop: int, method: str = "subtuning-late", lrs: tuple[float, ...] = BRANCH_LRS) -> MethodResult:
    """A branch on fixed units (no profile, no selection), its rate picked on validation (``lrs``), trained on the views."""
    return _searched_branch(bb, sample, s, caches, lambda: Branch.new(bb, start, stop, sample.num_classes, seed=sample.seed),
                            method, lrs)


def run_linear_probe(bb: Backbone, sample: TaskSample, s: BenchSettings, caches: SampleCaches) -> MethodResult:
    """The learner's probe fit (convex, L2 picked on validation): no epochs or learning rate apply."""
    c, y = caches.caches, caches.labels
    branch, r = baselines.fit_linear_probe(bb, sample.num_classes, (c["train"], y["train"]), (c["val"], y["val"]))
    test_acc = accuracy(predict(bb, branch, c["test"]), y["test"])
    return MethodResult("linear-probe", test_acc, r.val_acc, r.seconds, r.trainable_params, branch.spec.start, branch.spec.stop)


def run_lora(bb: Backbone, sample: TaskSample, s: BenchSettings, caches: SampleCaches, start: int, stop: int) -> MethodResult:
    """LoRA adapters on ``start:stop``, their rate picked on validation, trained on the views."""
    return _searched_branch(bb, sample, s, caches,
                            lambda: baselines.lora_branch(bb, start, stop, sample.num_classes, s.lora_rank, seed=sample.seed), "lora")


def run_full_finetune(bb: Backbone, sample: TaskSample, s: BenchSettings) -> MethodResult:
    """``learner.methods.train_full_finetune`` on the sample, scored on its test split."""
    device = next(bb.parameters()).device
    data = sample.inputs(bb.resolution, bb.mean, bb.std)
    model, searched = train_full_finetune(bb, sample.num_classes, data["train"], data["val"],
                                          recipe(s, len(sample.train[1]), sample.seed), device)
    test_acc = accuracy(baselines.predict(model, data["test"][0], device), data["test"][1])
    fit = searched.fit
    return _searched(MethodResult("full-ft", test_acc, fit.val_acc, fit.seconds, fit.trainable_params, 0, bb.num_blocks), searched)


def fixed_late_units(bb: Backbone, s: BenchSettings) -> tuple[int, int]:
    """(start, stop) of the last ``fixed_late_blocks`` units."""
    k = max(1, min(s.fixed_late_blocks, bb.num_blocks))
    return bb.num_blocks - k, bb.num_blocks


@torch.no_grad()
def shared_model_accuracy(model: MultiTaskModel, samples: dict[str, TaskSample]) -> dict[str, float]:
    """Test accuracy of every task, read through the shared all-tasks forward (what serving sees)."""
    bb = model.backbone
    device = next(bb.parameters()).device
    out = {}
    for task, sample in samples.items():
        x, y = sample.inputs(bb.resolution, bb.mean, bb.std)["test"]
        b = inference_batch(device)
        preds = torch.cat([model(x[i:i + b].to(device))[task].argmax(1).cpu() for i in range(0, len(x), b)])
        out[task] = accuracy(preds, y)
    return out
