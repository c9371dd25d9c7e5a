"""Task data as the learner needs it: validated labels and backbone-ready tensors.

The data layer (``imagedata``) hands over uint8 images; this module checks what the
learner relies on (>= 2 classes, none empty, labels 0..K-1, finite pixels, enough images
for a validation split) and turns images into the backbone's input (RGB, resized,
normalised) once, so profiling and training never redo it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from forkpoint.contract.errors import DataError
from forkpoint.contract.preprocessing import Preprocessing
from forkpoint.imagedata.convert import fit_square
from forkpoint.imagedata.decode import load_pixels


@dataclass(frozen=True)
class LabeledImages:
    images: np.ndarray | torch.Tensor  # (N,H,W) or (N,H,W,C) uint8/float, or (N,C,H,W) float tensor
    labels: np.ndarray | torch.Tensor


@dataclass(frozen=True)
class TaskData:
    """A task's classes and splits; ``val``/``test`` may be absent (val is then carved from train)."""

    class_names: list[str]
    train: LabeledImages
    val: LabeledImages | None = None
    test: LabeledImages | None = None

    @classmethod
    def from_dataset(cls, ds) -> "TaskData":
        """Adapt anything shaped like ``imagedata.ImageDataset`` (train/val/test splits with images, labels)."""

        def split(s):
            if s is None or len(s.labels) == 0:
                return None
            return LabeledImages(s.images, s.labels)

        return cls(list(ds.class_names), split(ds.train), split(getattr(ds, "val", None)), split(getattr(ds, "test", None)))


def check_labels(labels, num_classes: int, where: str) -> torch.Tensor:
    """Labels as int64 0..K-1, or a one-line error naming what is wrong."""
    arr = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if arr.ndim != 1:
        raise DataError(f"{where} labels must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
            raise DataError(f"{where} labels of dtype {arr.dtype} are not class indices: map labels to integers 0..{num_classes - 1}")
    arr = arr.astype(np.int64)
    bad = arr[(arr < 0) | (arr >= num_classes)]
    if bad.size:
        raise DataError(f"{where} label {int(bad[0])} is outside 0..{num_classes - 1} for {num_classes} class names: fix the labels or the class list")
    return torch.from_numpy(arr)


def check_task(data: TaskData) -> None:
    k = len(data.class_names)
    if k < 2:
        raise DataError(f"a task needs at least 2 classes, got {k}: add a second class")
    if len(set(data.class_names)) != k:
        raise DataError("class names are not unique: give every class its own name")
    y = check_labels(data.train.labels, k, "train")
    if len(y) != len(data.train.images):
        raise DataError(f"train has {len(data.train.images)} images but {len(y)} labels: give one label per image")
    counts = torch.bincount(y, minlength=k)
    empty = [data.class_names[i] for i in range(k) if counts[i] == 0]
    if empty:
        raise DataError(f"class '{empty[0]}' has no training images ({len(empty)} empty classes): add images or drop the class")
    for name, s in (("val", data.val), ("test", data.test)):
        if s is not None:
            ys = check_labels(s.labels, k, name)
            if len(ys) != len(s.images):
                raise DataError(f"{name} has {len(s.images)} images but {len(ys)} labels: give one label per image")


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded per-class split of indices into (train, val); every class keeps >= 1 of each."""
    gen = torch.Generator().manual_seed(seed)
    train_idx, val_idx = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < 2:
            raise DataError(f"class {c} has {len(idx)} training image(s), too few for a validation split: give every class at least 2 images")
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_val = min(max(1, round(len(idx) * fraction)), len(idx) - 1)
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return torch.sort(torch.cat(train_idx)).values, torch.sort(torch.cat(val_idx)).values


def _fit(b: torch.Tensor, resolution: int) -> torch.Tensor:
    """(n,C,H,W) uint8, or float in [0,1] -> (n,C,R,R) by the resize rule (shorter side to R, centre crop).

    uint8 pixels go through the data layer's ``fit_square`` (Pillow bicubic, 8-bit out), the
    very function that sizes decoded files, so an array and the same picture read from a file
    give equal tensors. Float images use torch's antialiased bicubic on the same geometry:
    the same picture up to rounding.
    """
    if b.dtype == torch.uint8:
        hwc = b.permute(0, 2, 3, 1).cpu().numpy()
        if hwc.shape[-1] == 1:
            hwc = hwc[..., 0]
        out = np.stack([fit_square(np.ascontiguousarray(img), resolution) for img in hwc])
        out = torch.from_numpy(out)
        return out[:, None] if out.ndim == 3 else out.permute(0, 3, 1, 2)
    h, w = b.shape[-2:]
    scale = resolution / min(h, w)
    nh, nw = max(resolution, round(h * scale)), max(resolution, round(w * scale))
    b = F.interpolate(b, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False).clamp_(0.0, 1.0)
    top, left = (nh - resolution) // 2, (nw - resolution) // 2
    return b[..., top:top + resolution, left:left + resolution]


def to_input(images, resolution: int, mean, std, chunk: int = 512) -> torch.Tensor:
    """Images of any size/channels -> (N,3,R,R) float32, normalised for the backbone.

    Accepts uint8 (0..255), 16-bit integer (0..65535) or float (0..1) arrays in NHW, NHWC or
    NCHW layout. Gray is repeated to RGB, alpha dropped, sizes other than R x R follow the
    backbone's resize rule (see :func:`_fit` and ``contract.preprocessing``).
    """
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.require(images, requirements=["C", "W"]))
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.permute(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3, 4):
        raise DataError(f"images of shape {tuple(x.shape)} are not (N,H,W), (N,H,W,C) or (N,C,H,W) with 1, 3 or 4 channels: convert them to RGB or grayscale")
    integer = not torch.is_floating_point(x)
    scale = (65535.0 if int(x.max()) > 255 else 255.0) if integer and x.numel() else 1.0
    if not integer and not torch.isfinite(x).all():
        raise DataError("images contain NaN or infinite pixels: clean or drop those images")
    if integer and x.dtype != torch.uint8 and scale == 255.0:
        x = x.to(torch.uint8)  # 8-bit values in a wider type: the uint8 path, bit for bit
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    out = torch.empty(len(x), 3, resolution, resolution)
    for i in range(0, len(x), chunk):
        b = x[i:i + chunk, :3]
        if b.dtype != torch.uint8:
            b = b.float() / scale
        if b.shape[-2:] != (resolution, resolution):
            b = _fit(b, resolution)
        if b.dtype == torch.uint8:
            b = b.float() / scale
        if b.shape[1] == 1:
            b = b.expand(-1, 3, -1, -1)
        out[i:i + chunk] = (b - mean_t) / std_t
    return out


def load_inputs(paths: Iterable[str | Path], spec: Preprocessing) -> torch.Tensor:
    """Image files -> the trunk's input (N,3,R,R), exactly as training on the same files saw them.

    The one file-to-tensor path: ``imagedata.decode.load_pixels`` (bounded decoding, the
    resize rule at ``spec.resolution``) then :func:`to_input`, the same two steps a user
    dataset takes through ``add-task`` (decoded into the dataset at the home's resolution,
    normalised by the learner). Raises DataError (exit 2) for unreadable or oversized files.
    """
    return torch.cat([
        to_input(load_pixels(p, spec.resolution).pixels[None], spec.resolution, spec.mean, spec.std) for p in paths
    ])
