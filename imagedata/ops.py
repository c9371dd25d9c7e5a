"""Derive task datasets from a loaded one: class subsets (split tasks) and low-data slices.

Both keep ``path``/``md5``: the data version is the source's; which classes or how many
images a task used is the task's own record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from forkpoint.imagedata.splits import keyed_order
from forkpoint.imagedata.types import ImageDataset, Split
from forkpoint.contract.errors import DataError


def subset_classes(ds: ImageDataset, classes: Sequence[int], name: str) -> ImageDataset:
    """Keep ``classes`` (indices into ds.class_names) relabelled 0..k-1 in the order given.

    E.g. Fashion-MNIST as five two-class tasks: ``subset_classes(f, [0, 1], "fashion-0-1")``.
    """
    classes = [int(c) for c in classes]
    bad = [c for c in classes if not 0 <= c < ds.num_classes]
    if bad:
        raise DataError(f"class index {bad[0]} is outside 0..{ds.num_classes - 1} for {ds.name}: pick existing classes")
    if len(set(classes)) != len(classes):
        raise DataError(f"class list {classes} repeats a class: list each class once")
    if len(classes) < 2:
        raise DataError(f"a task needs at least 2 classes, got {classes}: pick two or more")
    mapping = np.full(ds.num_classes, -1, dtype=np.int64)
    mapping[classes] = np.arange(len(classes))

    def pick(s: Split) -> Split:
        mask = mapping[s.labels] >= 0
        return Split(s.images[mask], mapping[s.labels[mask]])

    return dataclasses.replace(ds, name=name, class_names=[ds.class_names[c] for c in classes],
                               train=pick(ds.train), val=pick(ds.val), test=pick(ds.test))


def limit_per_class(ds: ImageDataset, n_train: int, seed: int = 0, n_test: int | None = None,
                    n_val: int | None = None) -> ImageDataset:
    """At most ``n_train`` train images per class (seeded choice); optionally cap test and val too.

    For low-data regimes and fast test slices; classes with fewer images keep all of them.
    """
    for label, n in (("n_train", n_train), ("n_test", n_test), ("n_val", n_val)):
        if n is not None and n < 1:
            raise DataError(f"{label}={n} keeps no images: use 1 or more")

    def cap(s: Split, n: int | None) -> Split:
        if n is None:
            return s
        keep = [keyed_order(np.flatnonzero(s.labels == c), seed)[:n] for c in range(ds.num_classes)]
        idx = np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
        return Split(s.images[idx], s.labels[idx])

    return dataclasses.replace(ds, train=cap(ds.train, n_train), val=cap(ds.val, n_val), test=cap(ds.test, n_test))
