"""Streams from the real offline datasets, and their Avalanche task-incremental benchmarks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from forkpoint.contract.errors import ConfigError
from forkpoint.scenarios.benchmark import build_benchmark
from forkpoint.scenarios.streams import FASHION_PAIRS, StreamOptions, load_stream, task_name


def test_domain_stream_is_four_real_datasets_in_order():
    stream = load_stream("domains", StreamOptions(per_class=5, test_per_class=3))
    assert [t.name for t in stream.tasks] == ["domains.mnist", "domains.fashion", "domains.animals", "domains.digits"]
    for t in stream.tasks:
        ds = t.dataset
        assert len(t.class_names) == 10
        assert np.bincount(ds.train.labels, minlength=10).tolist() == [5] * 10
        assert np.bincount(ds.test.labels, minlength=10).tolist() == [3] * 10
        assert ds.train.images.dtype == np.uint8 and ds.md5 and ds.path is not None
        assert ds.train.images.max() > 0  # real pixels, not an empty array
    data = stream.tasks[0].task_data()
    assert data.val is None  # the dataset's own val split is not handed out: the per-class budget is all there is


def test_split_stream_is_fashion_as_five_two_class_tasks():
    stream = load_stream("split", StreamOptions(per_class=4, test_per_class=2))
    assert len(stream.tasks) == 5
    fashion = ("tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot")
    for t, (a, b) in zip(stream.tasks, FASHION_PAIRS):
        assert t.class_names == [fashion[a], fashion[b]]
        assert sorted(set(t.dataset.train.labels.tolist())) == [0, 1]
    assert len({t.name for t in stream.tasks}) == 5


def test_options_pick_tasks_and_images_reproducibly():
    a = load_stream("domains", StreamOptions(per_class=4, test_per_class=2, num_tasks=2, seed=1))
    b = load_stream("domains", StreamOptions(per_class=4, test_per_class=2, num_tasks=2, seed=1))
    c = load_stream("domains", StreamOptions(per_class=4, test_per_class=2, num_tasks=2, seed=2))
    assert [t.name for t in a.tasks] == ["domains.mnist", "domains.fashion"]
    assert np.array_equal(a.tasks[0].dataset.train.images, b.tasks[0].dataset.train.images)
    assert not np.array_equal(a.tasks[0].dataset.train.images, c.tasks[0].dataset.train.images)


def _image_folder(root, digits, classes):
    images, labels = digits
    for c in classes:
        (root / f"Class {c}").mkdir(parents=True)
        for k, i in enumerate(np.flatnonzero(labels == c)[:6]):
            Image.fromarray(images[i]).resize((16, 16)).save(root / f"Class {c}" / f"{k}.png")
    return root


def test_custom_stream_from_image_folders(tmp_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    digits = ((d.images * 255 / 16).astype(np.uint8), d.target)
    first = _image_folder(tmp_path / "Low Digits", digits, (0, 1))
    second = _image_folder(tmp_path / "high", digits, (7, 8, 9))
    stream = load_stream([str(first), str(second)], StreamOptions(per_class=None, test_per_class=None, size=16))
    assert stream.name == "custom"
    assert [t.name for t in stream.tasks] == ["custom.low-digits", "custom.high"]
    assert [len(t.class_names) for t in stream.tasks] == [2, 3]


def test_bad_stream_requests_name_the_fix():
    with pytest.raises(ConfigError, match="at most 4"):
        load_stream("domains", StreamOptions(num_tasks=5))
    with pytest.raises(ConfigError, match="cannot be combined"):
        load_stream(["domains", "some/folder"])
    with pytest.raises(ConfigError, match="use 2 or more"):
        StreamOptions(per_class=1)
    with pytest.raises(ConfigError, match="no benchmark"):
        load_stream([])


def test_task_names_are_registry_safe_and_unique():
    taken = {"custom.my-data"}
    assert task_name("custom", "My Data!", taken) == "custom.my-data-2"
    assert task_name("custom", "...", set()) == "custom.task"


def test_benchmark_is_task_incremental_with_backbone_ready_inputs(lite0_32, tiny_domains):
    bm = build_benchmark(tiny_domains, lite0_32)
    train, test = list(bm.train_stream), list(bm.test_stream)
    assert [e.task_label for e in train] == [0, 1] and [e.task_label for e in test] == [0, 1]
    assert [e.current_experience for e in train] == [0, 1]
    for exp, task in zip(train, tiny_domains.tasks):
        assert len(exp.dataset) == len(task.dataset.train)
        assert exp.classes_in_this_experience == set(range(10))
        x, y, t = exp.dataset[0]
        assert tuple(x.shape) == (3, 32, 32) and x.dtype == torch.float32
        assert y == int(task.dataset.train.labels[0]) and t == exp.task_label
    assert len(test[1].dataset) == len(tiny_domains.tasks[1].dataset.test)
