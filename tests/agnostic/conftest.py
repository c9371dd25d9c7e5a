"""Fixtures for the agnostic-head tests: real Lite0 features at 32 px on real digits, and two real homes.

The homes are built once per session (the costly part, a few seconds per add at 32 px with 5
images per class): home ``ab`` adds digits then mnist, home ``ba`` mnist then digits, both
with the agnostic head on, so a test can compare the two orders and what each add left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from forkpoint.contract.branch import UnitRange
from forkpoint.learner import LabeledImages, TaskData, add_task_config, load_backbone

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def lite0_32():
    return load_backbone(resolution=32)


def digits_task(classes: tuple[int, ...], per_class: int = 24, seed: int = 0) -> TaskData:
    """Real sklearn 8x8 digits of ``classes`` (relabelled 0..k-1), 6 of each class held out for validation."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for c in classes:
        idx = rng.permutation(np.nonzero(d.target == c)[0])
        tr.append(idx[:per_class])
        va.append(idx[per_class:per_class + 6])
    remap = {c: i for i, c in enumerate(classes)}
    lab = lambda ix: np.array([remap[int(v)] for v in d.target[ix]], dtype=np.int64)  # noqa: E731
    tr, va = np.concatenate(tr), np.concatenate(va)
    return TaskData([f"d{c}" for c in classes], LabeledImages(images[tr], lab(tr)), LabeledImages(images[va], lab(va)))


@pytest.fixture(scope="session")
def make_digits():
    """``make_digits(classes) -> TaskData``: real digits of those classes, with a validation split."""
    return digits_task


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@dataclass
class Homes:
    """Two homes with the same two tasks added in opposite orders, and what digits served before mnist came."""

    ab: object
    ba: object
    data: dict
    digits_before: dict = field(default_factory=dict)  # tensors of digits' branch after the first add (home ab)
    logits_before: torch.Tensor | None = None


CFG = dict(epochs=1, patience=0, branch=UnitRange(15, 16), augment_views=0)


@pytest.fixture(scope="session")
def homes(tmp_path_factory, data_root) -> Homes:
    from forkpoint.workflows import add_task_version, init_home, load_live_model, load_task_data

    root = tmp_path_factory.mktemp("homes")
    ab, ba = init_home(root / "ab", resolution=32).home, init_home(root / "ba", resolution=32).home
    data = {n: load_task_data(n, data_root, limit=5, resolution=32) for n in ("digits", "mnist")}
    out = Homes(ab, ba, data)
    add_task_version(ab, "digits", data["digits"], add_task_config(**CFG), agnostic=True)
    out.digits_before = {k: v.clone() for k, v in ab.registry.load_tensors("digits").items()}
    x = _test_inputs(ab, data["digits"])
    out.logits_before = load_live_model(ab).model(x, tasks=["digits"])["digits"].detach().clone()
    add_task_version(ab, "mnist", data["mnist"], add_task_config(**CFG), agnostic=True)
    for name in ("mnist", "digits"):  # head-only branches here: the head never depends on a branch
        add_task_version(ba, name, data[name], add_task_config(**{**CFG, "branch": UnitRange(16, 16)}), agnostic=True)
    yield out
    ab.close()
    ba.close()


def _test_inputs(home, data) -> torch.Tensor:
    from forkpoint.learner.data import to_input

    spec = home.backbone.preprocessing
    return to_input(data.task_data.test.images, spec.resolution, spec.mean, spec.std)


@pytest.fixture(scope="session")
def test_inputs():
    return _test_inputs
