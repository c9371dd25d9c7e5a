"""The finetuning profile: train each candidate unit alone, score it on validation data.

This is the paper's map of "where finetuning helps" for one task; greedy selection
starts from its best entry. Results render as a table and a PNG.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import torch

from forkpoint.learner.backbone import Backbone
from forkpoint.learner.branch import Branch
from forkpoint.learner.cache import PrefixCache
from forkpoint.learner.figures import save_figure
from forkpoint.learner.parallel import SERIAL, Call, Executor
from forkpoint.learner.probe import ProbeFit
from forkpoint.learner.train import TrainConfig, fit


@dataclass(frozen=True)
class Candidate:
    """One trained-and-scored unit range (profile entry or greedy step)."""

    start: int
    stop: int
    names: list[str]
    params: int
    extra_cost_pct: float
    val_acc: float
    seconds: float
    epochs: int
    stage: str = "profile"  # profile | greedy | probe | final
    val_loss: float = float("nan")
    # per validation image: right or wrong (paired comparisons between candidates); not stored
    val_correct: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        if self.start == self.stop:
            return "linear probe"
        return self.names[0] if len(self.names) == 1 else f"{self.names[0]}..{self.names[-1]}"

    @property
    def is_probe(self) -> bool:
        return self.start == self.stop

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("val_correct")
        if d["val_loss"] != d["val_loss"]:  # NaN is not JSON
            d["val_loss"] = None
        d["label"] = self.label
        return d


def probe_candidate(backbone: Backbone, probe: ProbeFit, seconds: float) -> Candidate:
    """The empty branch (head only, no tuned units) as a selection candidate."""
    n = backbone.num_blocks
    params = probe.weight.numel() + probe.bias.numel()
    return Candidate(n, n, [], params, 0.0, probe.val_acc, seconds, 0, "probe", probe.val_loss, probe.val_correct)


def score_range(
    backbone: Backbone,
    start: int,
    stop: int,
    caches: tuple[PrefixCache, torch.Tensor, PrefixCache, torch.Tensor],
    num_classes: int,
    cfg: TrainConfig,
    siamese: bool,
    stage: str,
    head_init: ProbeFit | None = None,
) -> Candidate:
    """Train a fresh branch on units ``[start, stop)`` with ``cfg`` and return its validation score.

    The head starts from the probe when one is given (LP-FT). A profile is a short schedule
    scored once, at its end: scoring every epoch would double the profile's cost.
    """
    train, y_train, val, y_val = caches
    cfg = replace(cfg, patience=0)
    branch = Branch.new(backbone, start, stop, num_classes, siamese, seed=cfg.seed)
    if head_init is not None:
        branch.init_head(head_init.weight, head_init.bias)
    t0 = time.perf_counter()
    res = fit(backbone, branch, train, y_train, val, y_val, cfg)
    trainable = sum(p.numel() for p in branch.parameters())
    return Candidate(
        start, stop, backbone.block_names[start:stop], trainable,
        round(backbone.extra_cost_pct(start), 3), res.val_acc, time.perf_counter() - t0, res.epochs_run, stage,
        res.val_loss, res.val_correct,
    )


Caches = tuple[PrefixCache, torch.Tensor, PrefixCache, torch.Tensor]


@dataclass(frozen=True)
class ScoreJob:
    """What every candidate of one profile or greedy search shares: everything but its unit range."""

    backbone: Backbone
    caches: Caches
    num_classes: int
    cfg: TrainConfig
    siamese: bool = False
    head_init: ProbeFit | None = None

    def score(self, start: int, stop: int, stage: str) -> Candidate:
        return score_range(self.backbone, start, stop, self.caches, self.num_classes, self.cfg, self.siamese, stage,
                           self.head_init)


@dataclass(frozen=True)
class _ShippedJob:
    """A :class:`ScoreJob` as handles in Ray's object store (see learner.fanout)."""

    backbone: object
    train: object
    y_train: torch.Tensor
    val: object
    y_val: torch.Tensor
    num_classes: int
    cfg: TrainConfig
    siamese: bool
    head_init: ProbeFit | None
    device: str

    def score(self, start: int, stop: int, stage: str) -> Candidate:
        """On a worker: rebuild the job on this worker's device and score one range."""
        from forkpoint.learner.device import resolve_device
        from forkpoint.learner.fanout import open_backbone

        device = resolve_device(self.device)
        bb = open_backbone(self.backbone, device)
        caches = (self.train.open(bb, device), self.y_train, self.val.open(bb, device), self.y_val)
        return ScoreJob(bb, caches, self.num_classes, self.cfg, self.siamese, self.head_init).score(start, stop, stage)


def _ship(job: ScoreJob, starts: set[int], executor: Executor) -> _ShippedJob:
    from forkpoint.learner.fanout import ship_backbone, ship_split

    train, y_train, val, y_val = job.caches
    return _ShippedJob(
        ship_backbone(executor, job.backbone), ship_split(executor, train, starts, job.siamese), y_train,
        ship_split(executor, val, starts, job.siamese), y_val, job.num_classes, job.cfg, job.siamese, job.head_init,
        executor.task_device(train.device.type),
    )


def score_ranges(
    job: ScoreJob,
    ranges: Sequence[tuple[int, int]],
    stage: str,
    executor: Executor = SERIAL,
    on_candidate: Callable[[Candidate], None] | None = None,
) -> list[Candidate]:
    """Train and score each ``[start, stop)`` of ``ranges``, in that order, on ``executor``.

    Each range trains from the same seed on the same activations whichever executor runs
    it, so the candidates are the same (``seconds`` aside); the serial executor is the plain loop.
    """
    if executor.local:
        calls = [Call(f"{stage}:{a}:{b}", job.score, (a, b, stage)) for a, b in ranges]
    else:
        shipped = _ship(job, {a for a, _ in ranges}, executor)
        calls = [Call(f"{stage}:{a}:{b}", shipped.score, (a, b, stage)) for a, b in ranges]
    return executor.map(calls, on_candidate)


def run_profile(
    backbone: Backbone,
    candidates: Sequence[int],
    caches: Caches,
    num_classes: int,
    cfg: TrainConfig,
    siamese: bool = False,
    on_candidate: Callable[[Candidate], None] | None = None,
    head_init: ProbeFit | None = None,
    executor: Executor = SERIAL,
) -> list[Candidate]:
    """Score every candidate unit alone, shallow to deep so the prefix cache only moves forward."""
    job = ScoreJob(backbone, caches, num_classes, cfg, siamese, head_init)
    return score_ranges(job, [(i, i + 1) for i in sorted(candidates)], "profile", executor, on_candidate)


def profile_table(cands: Sequence[Candidate], title: str = "finetuning profile"):
    """A rich Table of the profile: block, params, extra-FLOPs %, val acc, time."""
    from rich.table import Table

    table = Table(title=title)
    for col in ("stage", "blocks", "params", "extra cost %", "val acc", "time s"):
        table.add_column(col, justify="right" if col not in ("stage", "blocks") else "left")
    for c in cands:
        table.add_row(c.stage, c.label, f"{c.params:,}", f"{c.extra_cost_pct:.1f}", f"{100 * c.val_acc:.1f}", f"{c.seconds:.1f}")
    return table


def plot_profile(cands: Sequence[Candidate], path: Path, title: str, chosen: tuple[int, int] | None = None) -> Path:
    """Write the profile as a PNG: validation accuracy per unit, extra inference cost on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prof = [c for c in cands if c.stage == "profile"]
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(prof) + 2), 4))
    xs = list(range(len(prof)))
    colors = ["tab:orange" if chosen and chosen[0] <= c.start < chosen[1] else "tab:blue" for c in prof]
    ax.bar(xs, [100 * c.val_acc for c in prof], color=colors)
    ax.set_xticks(xs, [c.label for c in prof], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("val accuracy (%), block tuned alone")
    lo = min((100 * c.val_acc for c in prof), default=0)
    ax.set_ylim(max(0, lo - 10), 100)
    probe = next((c for c in cands if c.stage == "probe"), None)
    if probe is not None:
        ax.axhline(100 * probe.val_acc, color="tab:gray", linestyle="--", label=f"linear probe {100 * probe.val_acc:.1f}%")
        ax.legend(loc="lower left", fontsize=8)
        lo = min(lo, 100 * probe.val_acc)
        ax.set_ylim(max(0, lo - 10), 100)
    ax2 = ax.twinx()
    ax2.plot(xs, [c.extra_cost_pct for c in prof], color="tab:red", marker=".")
    ax2.set_ylabel("extra inference cost (% of one pass)", color="tab:red")
    ax.set_title(title + (" (chosen in orange)" if chosen else ""))
    return save_figure(fig, path)
