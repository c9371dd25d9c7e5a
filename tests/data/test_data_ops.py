"""Task views of a dataset: class subsets (split tasks) and low-data slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forkpoint.imagedata import limit_per_class, load_dataset, subset_classes
from forkpoint.contract.errors import DataError


@pytest.fixture(scope="module")
def mnist(small_root: Path):
    return load_dataset(small_root / "mnist")


def test_subset_relabels_in_the_given_order(mnist):
    sub = subset_classes(mnist, [3, 1], "mnist-3-vs-1")
    assert sub.name == "mnist-3-vs-1" and sub.class_names == ["3", "1"] and sub.md5 == mnist.md5
    for new, old in ((sub.train, mnist.train), (sub.test, mnist.test)):
        assert set(new.labels.tolist()) == {0, 1}
        assert np.array_equal(new.images[new.labels == 0], old.images[old.labels == 3])
        assert np.array_equal(new.images[new.labels == 1], old.images[old.labels == 1])


def test_five_two_class_tasks_cover_everything_once(mnist):
    tasks = [subset_classes(mnist, [2 * i, 2 * i + 1], f"t{i}") for i in range(5)]
    assert sum(len(t.train) for t in tasks) == len(mnist.train)


@pytest.mark.parametrize("classes, pattern", [([0, 10], "outside 0..9"), ([1, 1], "repeats"), ([4], "at least 2")])
def test_subset_errors(mnist, classes, pattern):
    with pytest.raises(DataError, match=pattern):
        subset_classes(mnist, classes, "bad")


def test_limit_per_class_is_seeded_and_capped(mnist):
    small = limit_per_class(mnist, 5, seed=0, n_test=2)
    assert np.bincount(small.train.labels).tolist() == [5] * 10
    assert np.bincount(small.test.labels).tolist() == [2] * 10
    assert len(small.val) == len(mnist.val)  # untouched unless n_val
    again = limit_per_class(mnist, 5, seed=0, n_test=2)
    assert np.array_equal(again.train.images, small.train.images)
    other = limit_per_class(mnist, 5, seed=1)
    assert not np.array_equal(other.train.images, small.train.images)
    assert len(limit_per_class(mnist, 10_000).train) == len(mnist.train)  # small classes keep all
    with pytest.raises(DataError, match="n_train=0 keeps no images"):
        limit_per_class(mnist, 0)


def test_split_tensors_for_torch(mnist):
    x, y = mnist.test.tensors()
    assert tuple(x.shape) == (len(mnist.test), 1, 28, 28) and str(x.dtype) == "torch.float32"
    assert 0.0 <= float(x.min()) and float(x.max()) == 1.0 and str(y.dtype) == "torch.int64"
    assert len(mnist.test.torch_dataset()) == len(mnist.test)
