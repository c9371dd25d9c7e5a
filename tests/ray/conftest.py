"""Fixtures for the Ray tests: one small local Ray for the whole session, torch pinned to one thread.

Serial and Ray runs are compared bit for bit, so both must do the same arithmetic: the
driver runs with one torch thread and every Ray task gets one (2 CPUs / 2 workers).
The cluster is shut down at the end, which stops every process it started.
"""

from __future__ import annotations

import logging

import pytest
import torch

from forkpoint.learner import load_backbone


@pytest.fixture(scope="session")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 2**20, logging_level=logging.WARNING,
             log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def lite0_32():
    """The real embedded Lite0 weights at 32 px."""
    return load_backbone(resolution=32)


@pytest.fixture(scope="session")
def digits_012():
    """Real 8x8 sklearn digits 0, 1, 2: 30 training and 20 test images per class."""
    import numpy as np
    from sklearn.datasets import load_digits

    from forkpoint.learner import LabeledImages, TaskData

    d = load_digits()
    images = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    rng = np.random.default_rng(0)
    tr, te = [], []
    for c in (0, 1, 2):
        idx = rng.permutation(np.nonzero(d.target == c)[0])
        tr.append(idx[:30])
        te.append(idx[30:50])
    tr, te = np.concatenate(tr), np.concatenate(te)
    labels = d.target.astype(np.int64)
    return TaskData(["d0", "d1", "d2"], LabeledImages(images[tr], labels[tr]), None, LabeledImages(images[te], labels[te]))
