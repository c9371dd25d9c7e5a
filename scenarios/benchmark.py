"""A stream as an Avalanche task-incremental benchmark (experience i carries task label i).

Built with Avalanche's own pieces: task-aware classification datasets over tensors,
``benchmark_from_datasets`` for the train/test streams, ``with_task_labels`` and
``with_classes_timeline`` for the attributes strategies and multi-head models read.
Images are preprocessed once with the learner's ``to_input`` (the backbone's
resolution and normalisation), so every strategy sees identical inputs.

A training experience holds what add_task trains on: the task's training images minus the
validation images carved from them (:func:`task_splits`, add_task's own split), followed
by the augmented views of those images when the recipe makes views. The validation
images stay out of every experience: the strategies' early stopping and the runner's
choice of EWC/LwF settings read them (``scenarios.schedule``).
"""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from forkpoint.learner import Backbone
from forkpoint.learner.data import check_labels, stratified_split, to_input
from forkpoint.scenarios.streams import Stream, StreamTask

Split = tuple[torch.Tensor, torch.Tensor]  # backbone-ready images, labels


class _LabelledTensors(TensorDataset):
    """(image, class) pairs with the ``targets`` list Avalanche reads; classes as ints."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        super().__init__(x, y)
        self.targets = y.tolist()

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return x, int(y)


def task_splits(task: StreamTask, backbone: Backbone, val_fraction: float, split_seed: int) -> tuple[Split, Split]:
    """Backbone-ready training and validation images of ``task``, split exactly as add_task splits them."""
    data = task.task_data()
    x = to_input(data.train.images, backbone.resolution, backbone.mean, backbone.std)
    y = check_labels(data.train.labels, len(data.class_names), "train")
    tr, va = stratified_split(y, val_fraction, split_seed)
    return (x[tr], y[tr]), (x[va], y[va])


def task_dataset(images, labels, task_label: int, backbone: Backbone | None = None):
    """One experience's data: class targets and a constant task label over backbone-ready tensors
    (``images`` already are, or are made so with ``backbone``'s resolution and normalisation)."""
    from avalanche.benchmarks.utils import ConstantSequence, DataAttribute, TaskAwareClassificationDataset

    x = images if backbone is None else to_input(images, backbone.resolution, backbone.mean, backbone.std)
    y = torch.as_tensor(labels, dtype=torch.long)
    return TaskAwareClassificationDataset(
        [_LabelledTensors(x, y)],
        data_attributes=[
            DataAttribute(y.tolist(), "targets"),
            DataAttribute(ConstantSequence(task_label, len(y)), "targets_task_labels", use_in_getitem=True),
        ],
    )


def build_benchmark(stream: Stream, backbone: Backbone, train_splits: list[Split] | None = None):
    """Avalanche CLScenario with ``train_stream`` and ``test_stream`` (each task's test images), one experience per task.

    ``train_splits[i]`` is what task i's training experience holds (the runner passes the
    carved split and its views); None: each task's whole training set.
    """
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
    from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
    from avalanche.benchmarks.scenarios.task_aware import with_task_labels

    train, test = [], []
    for i, task in enumerate(stream.tasks):
        ds = task.dataset
        if train_splits is None:
            train.append(task_dataset(ds.train.images, ds.train.labels, i, backbone))
        else:
            train.append(task_dataset(*train_splits[i], i))
        test.append(task_dataset(ds.test.images, ds.test.labels, i, backbone))
    return with_classes_timeline(with_task_labels(benchmark_from_datasets(train=train, test=test)))
