"""Predictions for image files: every selected task from one shared forward pass.

Files become tensors through ``learner.data.load_inputs`` with the trunk's own
``preprocessing`` spec: the decoder and resize rule that built the training set from
the same files, so served accuracy is the accuracy measured (issue 13). Decoding is
bounded: a batch never holds more than one full-size image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from forkpoint.learner.data import load_inputs
from forkpoint.workflows.inputs import IMAGE_SUFFIXES, collect_images  # noqa: F401 - torch-free, re-exported
from forkpoint.workflows.live import LiveModel



@dataclass(frozen=True)
class TaskPrediction:
    label: str
    index: int
    probability: float
    top: tuple[tuple[str, float], ...]  # best first

    def to_dict(self) -> dict:
        return {
            "label": self.label, "index": self.index, "probability": self.probability,
            "top": [{"label": lab, "probability": p} for lab, p in self.top],
        }


@dataclass(frozen=True)
class ImagePrediction:
    path: str
    tasks: dict[str, TaskPrediction]

    def to_dict(self) -> dict:
        return {"path": self.path, "tasks": {t: p.to_dict() for t, p in self.tasks.items()}}


@dataclass(frozen=True)
class Scored:
    """One batch of files: each selected task's softmax probabilities, and the trunk's pooled features if asked."""

    paths: list[Path]
    probs: dict[str, torch.Tensor]
    features: torch.Tensor | None = None


def probabilities(
    live: LiveModel, paths: list[Path], tasks: list[str] | None = None, batch_size: int = 64, features: bool = False,
) -> Iterator[Scored]:
    """Softmax probabilities of every selected task, batch by batch, from one shared pass per batch.

    The one way files are scored (``predict``, ``evaluate``, ``predict --route``):
    ``load_inputs`` with the trunk's preprocessing, so every reader sees what training saw.
    ``features`` adds the trunk's pooled features (one more trunk pass) for routing."""
    names = tasks or live.tasks
    bb = live.model.backbone
    device = next(bb.parameters()).device
    for i in range(0, len(paths), batch_size):
        chunk = paths[i:i + batch_size]
        x = load_inputs(chunk, bb.preprocessing).to(device)
        logits = live.model(x, tasks=names)
        feats = None
        if features:
            with torch.no_grad():
                feats = bb(x).float().cpu()
        yield Scored(chunk, {t: torch.softmax(v.float().cpu(), dim=1) for t, v in logits.items()}, feats)


def predict_images(
    live: LiveModel,
    paths: list[Path],
    tasks: list[str] | None = None,
    top_k: int = 3,
    batch_size: int = 64,
) -> list[ImagePrediction]:
    """Top-``top_k`` classes with softmax probabilities for every image and selected task."""
    names = tasks or live.tasks
    out: list[ImagePrediction] = []
    for batch in probabilities(live, paths, names, batch_size):
        chunk, probs = batch.paths, batch.probs
        for row, path in enumerate(chunk):
            per_task = {t: top_prediction(probs[t][row], live.model.class_names[t], top_k) for t in names}
            out.append(ImagePrediction(str(path), per_task))
    return out


def top_prediction(p: torch.Tensor, classes: list[str], top_k: int) -> TaskPrediction:
    """One image's answer for one task from its softmax row: the best class and the top ``top_k``
    (also what ``forkpoint serve`` answers, so both speak the same JSON)."""
    values, idx = torch.topk(p, min(top_k, len(classes)))
    top = tuple((classes[j], float(v)) for v, j in zip(values.tolist(), idx.tolist()))
    return TaskPrediction(top[0][0], int(idx[0]), top[0][1], top)
