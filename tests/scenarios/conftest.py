"""Fixtures for the scenarios tests: the real Lite0 at 32 px, small slices of the real streams."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)  # pytest runs with -n 2: one thread per worker


@pytest.fixture(scope="session")
def lite0_32():
    """The embedded ImageNet Lite0 weights at 32 px: real features, cheap enough for CI."""
    from forkpoint.learner import load_backbone

    return load_backbone(resolution=32)


@pytest.fixture(scope="session")
def tiny_domains():
    """The domain stream's first two tasks (MNIST -> Fashion-MNIST), 20 train / 20 test images per class."""
    from forkpoint.scenarios.streams import StreamOptions, load_stream

    return load_stream("domains", StreamOptions(per_class=20, test_per_class=20, num_tasks=2))
