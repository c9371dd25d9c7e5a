"""Predictions for image files: every selected task from one shared forward pass.

Images are read with Pillow as RGB (gray stays gray in all three channels, exactly as
the learner repeats a gray channel during training) and preprocessed with the trunk's
own resolution and normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from forkpoint.learner.data import to_input
from forkpoint.workflows.errors import ImageInputError
from forkpoint.workflows.live import LiveModel

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


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


def collect_images(paths: list[str | Path]) -> list[Path]:
    """Files as given plus image files found under directories (recursively, sorted)."""
    if not paths:
        raise ImageInputError("no images given: pass image files or directories of images")
    found: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            inside = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not inside:
                raise ImageInputError(f"directory {p} holds no image files ({', '.join(IMAGE_SUFFIXES)}): pass a folder with images")
            found.extend(inside)
        elif p.is_file():
            found.append(p)
        else:
            raise ImageInputError(f"image {p} does not exist: check the path")
    return found


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8, or a one-line error for anything Pillow cannot decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy: torch wraps it
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageInputError(f"cannot read {path} as an image ({type(exc).__name__}): pass PNG/JPEG/BMP/TIFF/WebP files") from None


def preprocess(images: list[np.ndarray], resolution: int, mean, std) -> torch.Tensor:
    """Each image resized on its own (sizes may differ), then stacked."""
    return torch.cat([to_input(img[None], resolution, mean, std) for img in images])


def predict_images(
    live: LiveModel,
    paths: list[Path],
    tasks: list[str] | None = None,
    top_k: int = 3,
    batch_size: int = 64,
) -> list[ImagePrediction]:
    """Top-``top_k`` classes with softmax probabilities for every image and selected task."""
    names = tasks or live.tasks
    bb = live.model.backbone
    out: list[ImagePrediction] = []
    for i in range(0, len(paths), batch_size):
        chunk = paths[i:i + batch_size]
        x = preprocess([read_image(p) for p in chunk], bb.resolution, bb.mean, bb.std)
        logits = live.model(x.to(next(bb.parameters()).device), tasks=names)
        probs = {t: torch.softmax(v.float().cpu(), dim=1) for t, v in logits.items()}
        for row, path in enumerate(chunk):
            per_task = {}
            for t in names:
                classes = live.model.class_names[t]
                p = probs[t][row]
                k = min(top_k, len(classes))
                values, idx = torch.topk(p, k)
                top = tuple((classes[j], float(v)) for v, j in zip(values.tolist(), idx.tolist()))
                per_task[t] = TaskPrediction(top[0][0], int(idx[0]), top[0][1], top)
            out.append(ImagePrediction(str(path), per_task))
    return out
