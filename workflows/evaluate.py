"""Scoring live tasks on the user's own labelled images: accuracy, per-class recall, confusions, mistakes.

The labelled files are listed by the same loader ``add-task`` uses for user data
(``imagedata.userdata``: an ImageFolder, one with train/val/test subfolders, or a
path,label CSV) and scored through ``predict``'s one file-to-tensor path, so the numbers
are what serving gives. Every task given is scored from one shared forward pass per batch.

Each score is appended to the audit log as an ``evaluate`` event naming the version and
the data's md5, so "v3 scored 91.2% on data X" stays part of that version's history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from forkpoint.contract.errors import DataError
from forkpoint.workflows.home import Home
from forkpoint.workflows.inputs import LabelledFiles, labelled_files  # noqa: F401 - torch-free, re-exported
from forkpoint.workflows.live import LiveModel
from forkpoint.workflows.predict import probabilities

EVENT = "evaluate"


def matching_tasks(live: LiveModel, classes: list[str], asked: list[str] | None) -> list[str]:
    """Tasks whose class names cover the data's; an asked-for task that does not is an input error.

    A task asked twice is scored once (each image counts once in its score and its event)."""
    fits = [t for t in live.tasks if set(classes) <= set(live.model.class_names[t])]
    if asked:
        asked = list(dict.fromkeys(asked))
        for t in asked:
            if t not in fits:
                extra = sorted(set(classes) - set(live.model.class_names[t]))
                raise DataError(f"the data has classes task {t!r} does not know ({', '.join(extra[:5])}): "
                                f"name class folders/labels as the task's classes ({', '.join(live.model.class_names[t][:5])}, ...)")
        return list(asked)
    if not fits:
        raise DataError(f"no live task has the classes {', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}: "
                        "name class folders/labels after a task's classes (see `forkpoint show TASK`) or pass --task")
    return fits


def named_like(source: Path, task: str) -> bool:
    """Whether the data's folder (or CSV) name names ``task``: ``my-digits`` or ``digits_eval`` name ``digits``."""
    stem = (source.stem if source.is_file() else source.name).lower()
    return task.lower() == stem or task.lower() in re.split(r"[-_. ]+", stem)


def scoring_note(source: Path, tasks: list[str]) -> str:
    """Why the tasks chosen without --task are scored, most likely intended first, and how to choose."""
    named = [t for t in tasks if named_like(source, t)]
    why = [f"{t} (named like {source.name})" for t in named]
    why += [f"{t} ({'its classes cover the data' if len(tasks) == 1 else 'same class names as the data'})"
            for t in tasks if t not in named]
    listed = why[0] if len(why) == 1 else ", ".join(why[:-1]) + " and " + why[-1]
    if len(tasks) == 1:
        return f"scoring {listed}"
    return (f"scoring {listed}: pass --task to choose (e.g. --task {(named or tasks)[0]}); "
            "each scored task logs an `evaluate` event and gets its own --plot file")


@dataclass(frozen=True)
class Mistake:
    path: str
    true: str
    predicted: str
    probability: float  # of the predicted class
    true_probability: float


@dataclass
class TaskEvaluation:
    """One task's scores on the data: ``confusion[i][j]`` counts true class i predicted as j (task order)."""

    task: str
    version: int
    class_names: list[str]
    confusion: list[list[int]]
    mistakes: list[Mistake] = field(default_factory=list)

    @property
    def images(self) -> int:
        return sum(map(sum, self.confusion))

    @property
    def correct(self) -> int:
        return sum(self.confusion[i][i] for i in range(len(self.class_names)))

    @property
    def accuracy(self) -> float:
        return self.correct / self.images if self.images else 0.0

    def per_class(self) -> dict[str, dict[str, Any]]:
        """Per class present in the data: images, accuracy (= recall: right among that class's images), precision."""
        k = len(self.class_names)
        out = {}
        for i, name in enumerate(self.class_names):
            n = sum(self.confusion[i])
            if n == 0:
                continue
            predicted = sum(self.confusion[r][i] for r in range(k))
            out[name] = {"images": n, "accuracy": self.confusion[i][i] / n, "recall": self.confusion[i][i] / n,
                         "precision": self.confusion[i][i] / predicted if predicted else None}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "version": self.version, "images": self.images, "correct": self.correct,
                "accuracy": self.accuracy, "per_class": self.per_class(), "class_names": self.class_names,
                "confusion": self.confusion, "mistakes": [vars(m) for m in self.mistakes]}


@dataclass(frozen=True)
class Evaluation:
    data: LabelledFiles
    tasks: list[TaskEvaluation]

    def to_dict(self) -> dict[str, Any]:
        return {"data": {"path": str(self.data.source), "md5": self.data.md5, "images": len(self.data.paths),
                         "classes": self.data.class_names},
                "tasks": {e.task: e.to_dict() for e in self.tasks}}


def evaluate(live: LiveModel, data: LabelledFiles, tasks: list[str], top_wrong: int = 10,
             batch_size: int = 64) -> Evaluation:
    """Score ``tasks`` on ``data`` in one shared pass per batch; the ``top_wrong`` most confident mistakes kept."""
    tasks = list(dict.fromkeys(tasks))  # a task listed twice would count every image twice
    evals = {t: TaskEvaluation(t, live.versions[t].version, list(live.model.class_names[t]),
                               [[0] * len(live.model.class_names[t]) for _ in live.model.class_names[t]]) for t in tasks}
    wrong: dict[str, list[Mistake]] = {t: [] for t in tasks}
    labels = iter(data.labels)
    for batch in probabilities(live, data.paths, tasks, batch_size):
        chunk, probs = batch.paths, batch.probs
        truth = [next(labels) for _ in chunk]
        for t in tasks:
            e, p = evals[t], probs[t]
            conf, pred = torch.max(p, dim=1)
            for row, (path, label) in enumerate(zip(chunk, truth)):
                i, j = e.class_names.index(label), int(pred[row])
                e.confusion[i][j] += 1
                if i != j:
                    wrong[t].append(Mistake(str(path), label, e.class_names[j], float(conf[row]), float(p[row, i])))
    for t, e in evals.items():
        e.mistakes = sorted(wrong[t], key=lambda m: -m.probability)[:top_wrong]
    return Evaluation(data, list(evals.values()))


def record(home: Home, evaluation: Evaluation, actor: str | None = None) -> None:
    """One ``evaluate`` audit event per task: the version, the data's md5 and path, and the scores."""
    for e in evaluation.tasks:
        home.registry.record_evaluation(e.task, e.version, {
            "data_md5": evaluation.data.md5, "data_path": str(evaluation.data.source), "images": e.images,
            "correct": e.correct, "accuracy": round(e.accuracy, 6),
        }, actor=actor)


def confusion_png(e: TaskEvaluation, path: Path) -> Path:
    """The confusion matrix as a PNG (rows: true class, columns: predicted), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from forkpoint.learner.figures import save_figure

    k = len(e.class_names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * k, 1.0 + 0.45 * k))
    ax.imshow(e.confusion, cmap="Blues")
    ax.set_xticks(range(k), e.class_names, rotation=90)
    ax.set_yticks(range(k), e.class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{e.task} v{e.version}: {100 * e.accuracy:.1f}% of {e.images}")
    peak = max(max(row) for row in e.confusion) or 1
    for i in range(k):
        for j in range(k):
            if e.confusion[i][j]:
                ax.text(j, i, str(e.confusion[i][j]), ha="center", va="center", fontsize=7,
                        color="white" if e.confusion[i][j] > peak / 2 else "black")
    return save_figure(fig, path)


def plot_paths(path: Path, tasks: list[str]) -> dict[str, Path]:
    """``--plot PATH``: that file for one task, ``PATH-stem.<task>.png`` beside it for several."""
    path = Path(path)
    tasks = list(dict.fromkeys(tasks))
    if len(tasks) == 1:
        return {tasks[0]: path}
    return {t: path.with_name(f"{path.stem}.{t}{path.suffix or '.png'}") for t in tasks}

