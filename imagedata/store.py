"""The prepared on-disk format: one folder per dataset, raw arrays plus a manifest.

    <root>/<name>/images.npy     uint8 (N,H,W) or (N,H,W,3), source order after dedupe
                  labels.npy     int64 (N,), 0..K-1
                  split.npy      int8  (N,), 0 train / 1 val / 2 test
                  manifest.json  class names, shapes, counts, split recipe, source, license

Raw .npy and canonical JSON make the folder byte-identical on every machine, so its
DVC md5 is a stable data version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from forkpoint.imagedata.atomic import building, dumps_json, save_array
from forkpoint.imagedata.splits import SPLIT_NAMES
from forkpoint.imagedata.types import Split
from forkpoint.contract.errors import DataError

FORMAT = "forkpoint-imagedata/1"
FILES = {"images": "images.npy", "labels": "labels.npy", "split": "split.npy"}
MANIFEST = "manifest.json"


def split_counts(labels: np.ndarray, split: np.ndarray, k: int) -> dict[str, list[int]]:
    return {n: np.bincount(labels[split == i], minlength=k).tolist() for i, n in enumerate(SPLIT_NAMES)}


def write_prepared(target: Path, images: np.ndarray, labels: np.ndarray, split: np.ndarray,
                   manifest: dict[str, Any]) -> Path:
    """Write a prepared dataset folder atomically; ``manifest`` gets the array facts added."""
    k = len(manifest["class_names"])
    full = {**manifest, "format": FORMAT, "files": FILES, "num_images": int(len(labels)),
            "image_shape": list(images.shape[1:]), "dtype": "uint8",
            "class_counts": split_counts(labels, split, k),
            "split_sizes": {n: int((split == i).sum()) for i, n in enumerate(SPLIT_NAMES)}}
    with building(target) as tmp:
        save_array(tmp / FILES["images"], images.astype(np.uint8, copy=False))
        save_array(tmp / FILES["labels"], labels.astype(np.int64, copy=False))
        save_array(tmp / FILES["split"], split.astype(np.int8, copy=False))
        (tmp / MANIFEST).write_text(dumps_json(full), encoding="ascii")
    return target


def read_manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{folder / MANIFEST} is unreadable ({exc.__class__.__name__}): {_redo(folder)}") from exc
    if manifest.get("format") != FORMAT:
        raise DataError(f"{folder} has format {manifest.get('format')!r}, expected {FORMAT!r}: {_redo(folder)}")
    return manifest


def read_prepared(folder: Path) -> tuple[dict[str, Any], Split, Split, Split]:
    """Manifest and the three splits of a prepared folder, checked for consistency."""
    manifest = read_manifest(folder)
    try:
        arrays = {k: np.load(folder / f, allow_pickle=False) for k, f in FILES.items()}
    except (OSError, ValueError) as exc:
        raise DataError(f"{folder} has an unreadable array ({exc}): {_redo(folder)}") from exc
    images, labels, split = arrays["images"], arrays["labels"], arrays["split"]
    k = len(manifest.get("class_names", []))
    problem = None
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] != 3):
        problem = f"images.npy is {images.dtype} {images.shape}, not uint8 (N,H,W[,3])"
    elif not (len(images) == len(labels) == len(split)) or labels.ndim != 1 or split.ndim != 1:
        problem = f"images/labels/split lengths {len(images)}/{len(labels)}/{len(split)} differ"
    elif labels.dtype != np.int64 or (labels.size and (labels.min() < 0 or labels.max() >= k)):
        problem = f"labels.npy must be int64 in 0..{k - 1}"
    elif split.size and not np.isin(split, (0, 1, 2)).all():
        problem = "split.npy has codes other than 0/1/2"
    elif len(labels) != manifest.get("num_images"):
        problem = f"manifest says {manifest.get('num_images')} images, arrays hold {len(labels)}"
    if problem:
        raise DataError(f"{folder} is damaged ({problem}): {_redo(folder)}")
    parts = tuple(Split(images[split == i], labels[split == i]) for i in range(3))
    return manifest, *parts


def _redo(folder: Path) -> str:
    return f"re-create it with `forkpoint data prepare --root {folder.parent} --only {folder.name} --force`"
