"""Class-incremental accuracy beside task-incremental accuracy, on the same images.

Every head version is a stage (the head after each task joined it). At a stage, the
images of its member tasks are answered four ways:

* ``agnostic``: the ridge head over every class of the stage (task and label must both be right),
* ``ncm``: class means over the same features (SimpleCIL), the baseline,
* ``routing``: ``predict --route`` among the stage's tasks, then the routed task's own branch,
* ``task_incremental``: each image's own task's branch, the task given (forkpoint's default).

Reported per stage, averaged over stages ("average incremental accuracy") and after the
last stage. Branch and routing answers come from the live model, which is exactly what
each task answered when it was added (branches never move), so scoring every stage with
it is what each stage served.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from forkpoint.learner.agnostic import AgnosticHead
from forkpoint.learner.multitask import MultiTaskModel
from forkpoint.registry.heads import HeadRecord
from forkpoint.workflows.agnostic import load_head
from forkpoint.workflows.home import Home
from forkpoint.workflows.live import LiveModel
from forkpoint.workflows.routing import RoutingRecord, decide, embed, projection, records

WAYS = ("agnostic", "ncm", "routing", "task_incremental")


@dataclass
class ScoredImages:
    """One task's labelled images, answered by every live branch and placed in the routing space."""

    labels: torch.Tensor  # (N,) class index within the task
    features: torch.Tensor  # (N, D) trunk features
    branch: dict[str, torch.Tensor]  # task -> (N,) predicted class index
    distances: dict[str, torch.Tensor] = field(default_factory=dict)  # task -> (N,) calibrated routing distance


def score_live(live: LiveModel, x: torch.Tensor, labels: torch.Tensor) -> ScoredImages:
    """:func:`score_inputs` with the served model and its tasks' routing records."""
    return score_inputs(live.model, records(live), x, labels)


@torch.no_grad()
def score_inputs(model: MultiTaskModel, recs: dict[str, RoutingRecord], x: torch.Tensor, labels: torch.Tensor,
                 batch_size: int = 128) -> ScoredImages:
    """Backbone-ready inputs of one task: every branch's prediction, trunk features and routing distances."""
    bb = model.backbone
    device = next(bb.parameters()).device
    proj = projection(bb.num_features)
    feats, preds = [], {t: [] for t in model.tasks}
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device)
        for t, v in model(xb, tasks=model.tasks).items():
            preds[t].append(v.float().argmax(dim=1).cpu())
        feats.append(bb(xb).float().cpu())
    f = torch.cat(feats)
    z = embed(f, proj)
    return ScoredImages(torch.as_tensor(labels).long(), f, {t: torch.cat(p) for t, p in preds.items()},
                        {t: r.distance(z) for t, r in recs.items()})


@dataclass(frozen=True)
class Stage:
    head_version: int
    tasks: tuple[str, ...]
    images: int
    correct: dict[str, int | None]

    @property
    def accuracy(self) -> dict[str, float | None]:
        return {w: (c / self.images if c is not None and self.images else None) for w, c in self.correct.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"head_version": self.head_version, "tasks": list(self.tasks), "images": self.images,
                "accuracy": self.accuracy}


def score_stage(home: Home, record: HeadRecord, scored: dict[str, ScoredImages]) -> Stage:
    """One stored head version on the images of its member tasks (members without images are left out)."""
    head = load_head(home, record).head
    return score_head(head, record.version, tuple(m.task for m in record.members if m.task in scored), scored)


def score_head(head: AgnosticHead, stage: int, tasks: tuple[str, ...], scored: dict[str, ScoredImages]) -> Stage:
    """A head over ``tasks`` on their images: the four ways of answering, counted on the same images."""
    correct = {w: 0 for w in WAYS}
    routable = all(t in s.distances for s in scored.values() for t in tasks)
    n = 0
    for t in tasks:
        s = scored[t]
        y = s.labels
        n += len(y)
        for way, scores in (("agnostic", head.ridge_scores(s.features)), ("ncm", head.ncm_scores(s.features))):
            correct[way] += sum(a.task == t and a.index == int(label) for a, label in zip(head.answer(scores), y))
        correct["task_incremental"] += int((s.branch[t] == y).sum())
        if routable:
            for row in range(len(y)):
                went = decide({u: float(s.distances[u][row]) for u in tasks})
                correct["routing"] += int(went == t and int(s.branch[t][row]) == int(y[row]))
    if not routable:
        correct["routing"] = None  # type: ignore[assignment]
    return Stage(stage, tasks, n, correct)


def summary(stages: list[Stage]) -> dict[str, Any]:
    """Per way: the mean over stages (average incremental accuracy) and the last stage's accuracy."""
    out: dict[str, Any] = {}
    for w in WAYS:
        accs = [s.accuracy[w] for s in stages if s.accuracy[w] is not None]
        out[w] = {"average": sum(accs) / len(accs) if accs else None,
                  "last": stages[-1].accuracy[w] if stages else None}
    return out
