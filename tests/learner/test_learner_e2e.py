"""End to end on the real backbone: embedded ImageNet Lite0, real MNIST then real animal silhouettes."""

from __future__ import annotations

import pytest
import torch

from forkpoint.contract.branch import UnitRange
from forkpoint.learner import AddTaskConfig, MultiTaskModel, SelectionConfig, TaskData, TrainConfig, add_task, load_backbone
from forkpoint.learner.data import to_input


@pytest.mark.slow
def test_real_backbone_two_real_tasks_no_forgetting(tmp_path_factory):
    from forkpoint.imagedata import limit_per_class, load_dataset

    root = tmp_path_factory.mktemp("data")
    mnist = TaskData.from_dataset(limit_per_class(load_dataset("mnist", root=root), 30, n_test=20, n_val=8))
    animals = TaskData.from_dataset(limit_per_class(load_dataset("animals", root=root), 30, n_test=20, n_val=8))
    bb = load_backbone(resolution=64)
    model = MultiTaskModel(bb)
    cfg = AddTaskConfig(
        profile=TrainConfig(epochs=1, patience=0),
        train=TrainConfig(epochs=5, patience=3),
        selection=SelectionConfig(max_blocks=2),
        candidates=UnitRange(10, 16),
        device="cpu",
    )
    r1 = add_task(model, "mnist", mnist, cfg)
    x_mnist = to_input(mnist.test.images, 64, bb.mean, bb.std)
    before = model(x_mnist)["mnist"].clone()
    trunk = bb.fingerprint()

    r2 = add_task(model, "animals", animals, cfg)
    out = model(x_mnist)
    assert torch.equal(out["mnist"], before)
    assert bb.fingerprint() == trunk
    # a few hundred real images are enough for the real ImageNet features to do well
    assert r1.test_acc >= 0.6, r1.test_acc  # 10 classes, chance is 0.1
    assert r2.test_acc >= 0.3, r2.test_acc  # 10 animal silhouette classes
    acc = float((out["mnist"].argmax(1) == torch.as_tensor(mnist.test.labels)).float().mean())
    assert abs(acc - r1.test_acc) < 1e-6  # the shared pass reproduces the task's own test accuracy
