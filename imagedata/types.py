"""The two value types every loader returns: a labelled array split and a named dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is heavy; only tensors() needs it
    import torch


@dataclass(frozen=True, eq=False)
class Split:
    """Images and labels of one split; uint8 so nothing is rescaled twice downstream."""

    images: np.ndarray  # uint8, (N,H,W) grayscale or (N,H,W,3) RGB
    labels: np.ndarray  # int64 in 0..K-1

    def __len__(self) -> int:
        return len(self.labels)

    def tensors(self) -> tuple["torch.Tensor", "torch.Tensor"]:
        """(N,C,H,W) float32 in [0,1] and int64 labels: the backbone's preprocessing takes it from here."""
        from forkpoint.imagedata.tensors import split_tensors

        return split_tensors(self)

    def torch_dataset(self) -> "torch.utils.data.TensorDataset":
        """A TensorDataset of ``tensors()`` for DataLoader-based code."""
        from torch.utils.data import TensorDataset

        return TensorDataset(*self.tensors())


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A dataset with fixed splits and the data version (DVC md5) it came from."""

    name: str
    class_names: list[str]
    train: Split
    val: Split
    test: Split
    path: Path | None  # folder/file it was loaded from (for data versioning)
    md5: str | None  # DVC md5 of `path`; None for in-memory data
    # What loading had to fix, e.g. {"converted_rgba": 3, "resized": 10}; empty when nothing.
    conversions: dict[str, int] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train.images.shape[1:])

    def __repr__(self) -> str:
        sizes = "/".join(str(len(s)) for s in self.splits.values())
        return (f"ImageDataset({self.name!r}, {self.num_classes} classes, {self.image_shape} images, "
                f"train/val/test={sizes}, md5={self.md5})")
