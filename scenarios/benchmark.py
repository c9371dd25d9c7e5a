"""A stream as an Avalanche task-incremental benchmark (experience i carries task label i).

Built with Avalanche's own pieces: task-aware classification datasets over tensors,
``benchmark_from_datasets`` for the train/test streams, ``with_task_labels`` and
``with_classes_timeline`` for the attributes strategies and multi-head models read.
Images are preprocessed once with the learner's ``to_input`` (the backbone's
resolution and normalisation), so every strategy sees identical inputs.
"""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from forkpoint.learner import Backbone
from forkpoint.learner.data import to_input
from forkpoint.scenarios.streams import Stream


class _LabelledTensors(TensorDataset):
    """(image, class) pairs with the ``targets`` list Avalanche reads; classes as ints."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        super().__init__(x, y)
        self.targets = y.tolist()

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return x, int(y)


def task_dataset(images, labels, task_label: int, backbone: Backbone):
    """One experience's data: backbone-ready tensors, class targets and a constant task label."""
    from avalanche.benchmarks.utils import ConstantSequence, DataAttribute, TaskAwareClassificationDataset

    x = to_input(images, backbone.resolution, backbone.mean, backbone.std)
    y = torch.as_tensor(labels, dtype=torch.long)
    return TaskAwareClassificationDataset(
        [_LabelledTensors(x, y)],
        data_attributes=[
            DataAttribute(y.tolist(), "targets"),
            DataAttribute(ConstantSequence(task_label, len(y)), "targets_task_labels", use_in_getitem=True),
        ],
    )


def build_benchmark(stream: Stream, backbone: Backbone):
    """Avalanche CLScenario with ``train_stream`` and ``test_stream``, one experience per task."""
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
    from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
    from avalanche.benchmarks.scenarios.task_aware import with_task_labels

    train, test = [], []
    for i, task in enumerate(stream.tasks):
        ds = task.dataset
        train.append(task_dataset(ds.train.images, ds.train.labels, i, backbone))
        test.append(task_dataset(ds.test.images, ds.test.labels, i, backbone))
    return with_classes_timeline(with_task_labels(benchmark_from_datasets(train=train, test=test)))
