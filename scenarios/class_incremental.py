"""Class-incremental accuracy in the stream harness, beside the task-incremental accuracy matrix.

After SubTuning has learnt the stream, each stage (the first i tasks) is answered without
a task name, on every stage task's test images: the agnostic head (workflows/agnostic.py's
statistics, summed over the stage's tasks), NCM, routing + the routed task's branch, and
each image's own branch (the task given). Statistics and routing records are fitted on
each task's training images only, with the validation carve add-task uses; the branches
are the ones SubTuning trained, which never move, so one pass scores every stage.
"""

from __future__ import annotations

from typing import Any

import torch

from forkpoint.learner.agnostic import AgnosticHead, HeadConfig, projection
from forkpoint.learner.data import to_input
from forkpoint.learner.multitask import MultiTaskModel
from forkpoint.scenarios.streams import StreamTask
from forkpoint.workflows.agnostic import fit_statistics
from forkpoint.workflows.agnostic_eval import score_head, score_inputs, summary
from forkpoint.workflows.routing import fit_routing


def class_incremental(tasks: list[StreamTask], names: list[str], model: MultiTaskModel, val_fraction: float,
                      seed: int) -> dict[str, Any]:
    """Per stage and on average: class-incremental accuracy (agnostic head, NCM, routing) and task-incremental accuracy."""
    bb = model.backbone
    config = HeadConfig()
    stats, recs, scored = {}, {}, {}
    for task, name in zip(tasks, names):
        data = task.task_data()
        stats[name] = fit_statistics(bb, data, val_fraction, seed, config).stats
        recs[name] = fit_routing(bb, data, val_fraction, seed)
    for task, name in zip(tasks, names):
        test = task.task_data().test
        x = to_input(test.images, bb.resolution, bb.mean, bb.std)
        scored[name] = score_inputs(model, recs, x, torch.as_tensor(test.labels).long())
    proj = projection(bb.num_features, config.dim, config.seed)
    stages = []
    for i in range(1, len(names) + 1):
        head = AgnosticHead.build([(n, stats[n]) for n in names[:i]], proj, config)
        stages.append(score_head(head, i, tuple(names[:i]), scored))
    return {"stages": [s.to_dict() for s in stages], "summary": summary(stages)}


def markdown(result: dict[str, Any]) -> list[str]:
    """The report's class-incremental table (empty when the strategy has none)."""
    if not result:
        return []
    pct = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["Without a task name (class-incremental; test images of every task so far):", "",
             "| after | agnostic head | NCM | routing + branch | task given |", "|---|---|---|---|---|"]
    for s in result["stages"]:
        a = s["accuracy"]
        lines.append(f"| {s['tasks'][-1]} | {pct(a['agnostic'])} | {pct(a['ncm'])} | {pct(a['routing'])} | {pct(a['task_incremental'])} |")
    for what in ("average", "last"):
        m = result["summary"]
        lines.append(f"| {what} | {pct(m['agnostic'][what])} | {pct(m['ncm'][what])} | {pct(m['routing'][what])} | "
                     f"{pct(m['task_incremental'][what])} |")
    return [*lines, ""]
