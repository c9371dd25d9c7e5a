"""The task-agnostic head in a home: summed when a task is added, answered without a task name.

``add_task_version(..., agnostic=True)`` (``add-task --agnostic``) calls :func:`fit_statistics`
on the new task's own training images (train split for the fit part, its validation split,
or 15% carved from train as add-task carves it, for the validation part; never test
images), then :func:`add_to_head` stores them and a new head version over the previous
members plus this task. Earlier tasks' statistics are reused by reference, never
recomputed; no branch is touched. ``predict --any`` (:func:`predict_any`) rebuilds the head
from the stored statistics (sha256-checked) and answers each image with a task and a label.

The math is learner/agnostic.py; the rows and files registry/heads.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from forkpoint.contract.errors import ForkpointError
from forkpoint.learner.agnostic import METHOD, AgnosticHead, HeadConfig, TaskStatistics, projection, task_statistics
from forkpoint.learner.data import TaskData, check_labels, load_inputs, stratified_split
from forkpoint.registry import heads
from forkpoint.registry.heads import HeadMovedError, HeadRecord
from forkpoint.workflows.home import Home
from forkpoint.workflows.routing import _capped, _take, trunk_features

PER_CLASS = 1000  # images per class and split summed into a task's statistics: bounds the trunk pass on big datasets
ATTEMPTS = 4  # rebuilds when another writer moved the head meanwhile


class HeadUnavailableError(ForkpointError):
    """``predict --any`` on a home whose tasks were added without ``--agnostic``."""


@dataclass(frozen=True)
class FittedStatistics:
    """A task's statistics and what they were summed over (stored with them)."""

    stats: TaskStatistics
    info: dict[str, Any]


def _splits(data: TaskData, val_fraction: float, seed: int, per_class: int):
    """(fit images, fit labels, val images, val labels, rule): the routing record's split rule, capped per class."""
    k = len(data.class_names)
    y = check_labels(data.train.labels, k, "train")
    if data.val is not None and len(data.val.labels):
        yv = check_labels(data.val.labels, k, "val")
        tr, va = _capped(y, per_class, seed), _capped(yv, per_class, seed)
        return _take(data.train.images, tr), y[tr], _take(data.val.images, va), yv[va], "validation split"
    tr, va = stratified_split(y, val_fraction, seed)
    tr, va = tr[_capped(y[tr], per_class, seed)], va[_capped(y[va], per_class, seed)]
    return _take(data.train.images, tr), y[tr], _take(data.train.images, va), y[va], f"{val_fraction:g} of train carved"


def fit_statistics(backbone, data: TaskData, val_fraction: float, seed: int, config: HeadConfig = HeadConfig(),
                   per_class: int = PER_CLASS) -> FittedStatistics:
    """Sum one task's training images into its head statistics (one trunk pass; no branch involved)."""
    x_fit, y_fit, x_val, y_val, rule = _splits(data, val_fraction, seed, per_class)
    proj = projection(backbone.num_features, config.dim, config.seed)
    stats = task_statistics(trunk_features(backbone, x_fit), y_fit, trunk_features(backbone, x_val), y_val,
                            len(data.class_names), proj)
    info = {**config.to_dict(), "fit_images": len(y_fit), "val_images": len(y_val), "validation": rule,
            "per_class_cap": per_class, "split_seed": seed}
    return FittedStatistics(stats, info)


def _config_of(record: HeadRecord | None) -> HeadConfig:
    return HeadConfig.from_dict(record.config) if record is not None else HeadConfig()


def add_to_head(home: Home, task: str, version: int, fitted: FittedStatistics, actor: str | None = None) -> HeadRecord:
    """Store ``task@version``'s statistics and the next head version (the task replaces its older version in place).

    ``lam`` is re-chosen over every member's validation statistics; nothing else is recomputed."""
    reg, fp = home.registry, home.fingerprint
    for _ in range(ATTEMPTS):
        latest = heads.latest_head(reg, fp, METHOD)
        config = _config_of(latest)
        if fitted.info["dim"] != config.dim or fitted.info["seed"] != config.seed:
            raise HeadUnavailableError(f"{task}'s statistics use dim {fitted.info['dim']}, the head {config.dim}: fit them with the head's config")
        old = list(latest.members) if latest is not None else []
        members: list[tuple[str, int]] = [(m.task, m.version) for m in old]
        stats = {(m.task, m.version): TaskStatistics.from_tensors(heads.load_stats(reg, m)) for m in old if m.task != task}
        stats[(task, version)] = fitted.stats
        members = [(task, version) if name == task else (name, v) for name, v in members]
        if (task, version) not in members:
            members.append((task, version))
        head = AgnosticHead.build([(name, stats[(name, v)]) for name, v in members],
                                  projection(home.backbone.num_features, config.dim, config.seed), config)
        try:
            return heads.record_head(reg, fp, METHOD, task=task, version=version, tensors=fitted.stats.to_tensors(),
                                     stats_config=fitted.info, members=members,
                                     parent=latest.version if latest is not None else None,
                                     config={**config.to_dict(), **head.selection.to_dict()}, actor=actor)
        except HeadMovedError:
            continue
    raise HeadMovedError(f"the agnostic head kept moving while {task}@{version} was added to it: retry")


@dataclass
class LoadedHead:
    """A stored head version, solved, with each member's class names."""

    record: HeadRecord
    head: AgnosticHead
    class_names: dict[str, list[str]]

    def label(self, task: str, index: int) -> str:
        return self.class_names[task][index]


def load_head(home: Home, record: HeadRecord | None = None) -> LoadedHead:
    """The newest head (or ``record``), rebuilt from its members' sha256-checked statistics."""
    record = record or heads.latest_head(home.registry, home.fingerprint, METHOD)
    if record is None:
        raise HeadUnavailableError("this home has no task-agnostic head: add tasks with `forkpoint add-task NAME --data ... --agnostic` "
                                   "(each task added with it joins the head), or predict with --task / --route")
    config = _config_of(record)
    members = [(m.task, TaskStatistics.from_tensors(heads.load_stats(home.registry, m))) for m in record.members]
    proj = projection(home.backbone.num_features, config.dim, config.seed)
    head = AgnosticHead.build(members, proj, config, lam=float(record.config["lambda"]))  # the lambda chosen when it was added
    names = {m.task: list(home.registry.show(m.task, m.version).class_names) for m in record.members}
    return LoadedHead(record, head, names)


def all_heads(home: Home) -> list[HeadRecord]:
    """Every head version of the home, oldest first (one per task added with --agnostic)."""
    return heads.head_versions(home.registry, home.fingerprint, METHOD)


@dataclass(frozen=True)
class AnyPrediction:
    """One image's answer without a task name: the ridge head's, and NCM's as a baseline."""

    path: str
    task: str
    label: str
    score: float
    ncm: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "task": self.task, "label": self.label, "score": round(self.score, 6), "ncm": self.ncm}


def file_features(home: Home, paths: list[Path], batch_size: int = 64) -> torch.Tensor:
    """Pooled trunk features of image files, through the trunk's own preprocessing (what training saw)."""
    bb = home.backbone
    device = next(bb.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(paths), batch_size):
            out.append(bb(load_inputs(paths[i:i + batch_size], bb.preprocessing).to(device)).float().cpu())
    return torch.cat(out)


def predict_any(home: Home, paths: list[Path], loaded: LoadedHead | None = None) -> list[AnyPrediction]:
    """Per image: the task and label the head answers over every class it knows, with its score."""
    loaded = loaded or load_head(home)
    feats = file_features(home, paths)
    ridge = loaded.head.answer(loaded.head.ridge_scores(feats))
    ncm = loaded.head.answer(loaded.head.ncm_scores(feats))
    return [AnyPrediction(str(p), r.task, loaded.label(r.task, r.index), r.score,
                          {"task": n.task, "label": loaded.label(n.task, n.index), "score": round(n.score, 6)})
            for p, r, n in zip(paths, ridge, ncm)]
