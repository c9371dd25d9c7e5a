"""The five ways to add a task that the accuracy benchmark compares, behind one call each.

* ``subtuning``: the learner's own ``add_task`` (profile, greedy selection, train);
* ``subtuning-late``: ``add_task`` with a fixed branch on the last units (no selection);
* ``linear-probe``: an empty branch (head only) on the frozen trunk's features;
* ``lora``: LoRA adapters (peft) on the units SubTuning chose, plus a head;
* ``full-ft``: every weight of a private backbone copy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from forkpoint.benchmarks.baselines import fit_full_finetune, lora_branch
from forkpoint.benchmarks.datasets import TaskSample
from forkpoint.benchmarks.settings import BenchSettings
from forkpoint.learner import AddTaskConfig, Branch, MultiTaskModel, SelectionConfig, TrainConfig, add_task
from forkpoint.learner.backbone import Backbone
from forkpoint.learner.cache import PrefixCache
from forkpoint.learner.train import accuracy, fit, predict

METHODS = ("subtuning", "subtuning-late", "linear-probe", "lora", "full-ft")


@dataclass(frozen=True)
class MethodResult:
    method: str
    test_acc: float
    val_acc: float
    seconds: float
    trainable_params: int
    start: int  # first tuned unit (num_blocks for a linear probe / full_ft: 0)
    stop: int

    def to_dict(self) -> dict:
        return asdict(self)


def train_config(s: BenchSettings, n_train: int, epochs: int | None = None, seed: int = 0, lr: float | None = None) -> TrainConfig:
    """One recipe for every method: fixed epochs (patience off) so times compare epoch for epoch."""
    return TrainConfig(epochs=epochs or s.train_epochs, lr=lr or s.lr, head_lr=s.head_lr, batch_size=s.batch_for(n_train),
                       patience=0, seed=seed)


def affordable_candidates(bb: Backbone, max_extra_cost: float) -> tuple[int, int]:
    """Units a branch may start at under the cost budget: profiling the others is wasted work."""
    ok = [i for i in range(bb.num_blocks) if bb.extra_cost_pct(i) <= max_extra_cost]
    if not ok:
        return bb.num_blocks - 1, bb.num_blocks
    return min(ok), bb.num_blocks


def add_task_config(s: BenchSettings, bb: Backbone, sample: TaskSample, branch: tuple[int, int] | None = None,
                    candidates: tuple[int, int] | None = None, cache: bool = True) -> AddTaskConfig:
    n, seed = len(sample.train[1]), sample.seed
    return AddTaskConfig(
        profile=train_config(s, n, s.profile_epochs, seed),
        train=train_config(s, n, s.train_epochs, seed),
        selection=SelectionConfig(max_blocks=s.max_blocks, max_extra_cost=s.max_extra_cost),
        candidates=None if branch else (candidates or affordable_candidates(bb, s.max_extra_cost)),
        branch=branch,
        split_seed=seed,
        device=s.device,
        cache=cache,
    )


def run_subtuning(model: MultiTaskModel, task: str, sample: TaskSample, s: BenchSettings) -> MethodResult:
    """``add_task`` on ``model`` (the task stays attached: the forgetting benchmark reads it back)."""
    r = add_task(model, task, sample.task_data(), add_task_config(s, model.backbone, sample))
    return MethodResult("subtuning", float(r.test_acc), r.val_acc, r.timings["total_s"], r.trainable_params, r.spec.start, r.spec.stop)


class SampleCaches:
    """Prefix caches of one sample's splits, shared by the branch-shaped methods.

    Sharing only saves the frozen prefix's recomputation between methods; each method
    still trains from scratch. (``add_task`` builds its own caches, as a user's call would.)
    """

    def __init__(self, bb: Backbone, sample: TaskSample) -> None:
        device = next(bb.parameters()).device
        data = sample.inputs(bb.resolution, bb.mean, bb.std)
        self.labels = {k: data[k][1] for k in data}
        self.caches = {k: PrefixCache(bb, data[k][0], device) for k in data}


def fit_branch(bb: Backbone, branch: Branch, caches: SampleCaches, cfg: TrainConfig, method: str) -> MethodResult:
    """Train ``branch`` with the learner's ``fit`` and score it on the sample's test split."""
    c, y = caches.caches, caches.labels
    res = fit(bb, branch, c["train"], y["train"], c["val"], y["val"], cfg)
    test_acc = accuracy(predict(bb, branch, c["test"]), y["test"])
    trainable = sum(p.numel() for p in branch.parameters() if p.requires_grad)
    return MethodResult(method, test_acc, res.val_acc, res.seconds, trainable, branch.spec.start, branch.spec.stop)


def run_fixed_branch(bb: Backbone, sample: TaskSample, s: BenchSettings, caches: SampleCaches,
                     start: int, stop: int, method: str = "subtuning-late") -> MethodResult:
    """A branch on fixed units, trained exactly as ``add_task(branch=...)`` trains it (Branch.new + fit)."""
    branch = Branch.new(bb, start, stop, sample.num_classes, seed=sample.seed)
    return fit_branch(bb, branch, caches, train_config(s, len(sample.train[1]), seed=sample.seed), method)


def run_linear_probe(bb: Backbone, sample: TaskSample, s: BenchSettings, caches: SampleCaches) -> MethodResult:
    n = bb.num_blocks
    return run_fixed_branch(bb, sample, s, caches, n, n, "linear-probe")


def run_lora(bb: Backbone, sample: TaskSample, s: BenchSettings, caches: SampleCaches, start: int, stop: int) -> MethodResult:
    branch = lora_branch(bb, start, stop, sample.num_classes, s.lora_rank, seed=sample.seed)
    return fit_branch(bb, branch, caches, train_config(s, len(sample.train[1]), seed=sample.seed), "lora")


def run_full_finetune(bb: Backbone, sample: TaskSample, s: BenchSettings) -> MethodResult:
    device = next(bb.parameters()).device
    data = sample.inputs(bb.resolution, bb.mean, bb.std)
    cfg = train_config(s, len(sample.train[1]), seed=sample.seed, lr=s.full_ft_lr)
    r = fit_full_finetune(bb, sample.num_classes, data["train"], data["val"], data["test"], cfg, device)
    return MethodResult("full-ft", r.test_acc, r.val_acc, r.seconds, r.trainable_params, 0, bb.num_blocks)


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
        preds = torch.cat([model(x[i:i + 256].to(device))[task].argmax(1).cpu() for i in range(0, len(x), 256)])
        out[task] = accuracy(preds, y)
    return out
