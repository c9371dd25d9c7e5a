"""Shared fixtures for learner tests: tiny models of every family and small slices of real data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from forkpoint.learner import LabeledImages, TaskData, load_backbone

torch.set_num_threads(2)

# name -> timm kwargs for a tiny, randomly initialised model of each supported family
TINY_FAMILIES = {
    "mobilenetv3_small_050": {},
    "tf_efficientnet_lite0": {},
    "resnet10t": {},
    "vit_tiny_patch16_224": {"img_size": 32},
    "deit_tiny_patch16_224": {"img_size": 32},
    "convnext_atto": {},
}


def _tiny_backbone(name: str):
    """A random-init backbone (no weights loaded: tests only) at 32 px."""
    from forkpoint.learner.backbone import Backbone
    import timm

    model = timm.create_model(name, pretrained=False, **TINY_FAMILIES[name])
    return Backbone(model, name, "random-init", 32, (0.5,) * 3, (0.5,) * 3)


@pytest.fixture(scope="session")
def lite0_32():
    """The real embedded Lite0 weights at 32 px: real features, cheap enough for unit tests."""
    return load_backbone(resolution=32)


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return images, d.target.astype(np.int64)


def _digits_task(classes=(0, 1, 2), per_class: int = 30, test_per_class: int = 20, seed: int = 0) -> TaskData:
    """Real 8x8 sklearn digits restricted to ``classes`` (relabelled 0..k-1), disjoint train/test."""
    images, labels = _digits()
    rng = np.random.default_rng(seed)
    tr, te = [], []
    for c in classes:
        idx = rng.permutation(np.nonzero(labels == c)[0])
        tr.append(idx[:per_class])
        te.append(idx[per_class:per_class + test_per_class])
    tr, te = np.concatenate(tr), np.concatenate(te)
    remap = {c: i for i, c in enumerate(classes)}
    relabel = lambda ys: np.array([remap[int(v)] for v in ys], dtype=np.int64)
    return TaskData(
        [f"digit-{c}" for c in classes],
        LabeledImages(images[tr], relabel(labels[tr])),
        None,
        LabeledImages(images[te], relabel(labels[te])),
    )


@pytest.fixture(scope="session")
def digits_012() -> TaskData:
    return _digits_task((0, 1, 2))


@pytest.fixture(scope="session")
def digits_789() -> TaskData:
    return _digits_task((7, 8, 9), seed=1)


@pytest.fixture(scope="session")
def tiny_backbone():
    """Factory: ``tiny_backbone(name)`` builds a random-init model of a supported family at 32 px."""
    return _tiny_backbone


@pytest.fixture(scope="session")
def digits_task():
    """Factory: ``digits_task(classes, per_class, test_per_class, seed)`` on real sklearn digits."""
    return _digits_task
