"""prepare(): deterministic, atomic, stratified, deduplicated, and loadable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from forkpoint.imagedata import store as imagedata_store
from forkpoint.imagedata import dvc_md5, load_dataset, prepare
from forkpoint.imagedata.store import FILES, MANIFEST
from forkpoint.contract.errors import DataError


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_small_prepare_is_byte_identical_and_has_the_same_dvc_md5(small_root: Path, tmp_path: Path):
    again = tmp_path / "data"
    prepare(again, ["mnist", "animals", "digits"], limit_per_class=20, progress=False)
    assert _tree(again) == _tree(small_root)
    assert dvc_md5(again) == dvc_md5(small_root)
    assert sorted(_tree(again)) == sorted(f"{n}/{f}" for n in ("animals", "digits", "mnist")
                                          for f in [*FILES.values(), MANIFEST])


def test_manifest_describes_the_arrays(small_root: Path):
    m = json.loads((small_root / "animals" / MANIFEST).read_text())
    assert m["class_names"][0] == "bear" and m["class_names"][-1] == "zebra"
    assert m["limit_per_class"] == 20 and m["num_images"] == 200 and m["image_shape"] == [28, 28]
    assert m["split_sizes"] == {"train": 140, "val": 20, "test": 40}  # 70/10/20 of 20 per class
    assert m["class_counts"]["test"] == [4] * 10
    assert m["source"]["license"] == "MIT" and "removed" in m["dedupe"]
    text = (small_root / "animals" / MANIFEST).read_text()
    assert text == json.dumps(m, sort_keys=True, indent=2, separators=(",", ": ")) + "\n"


def test_animals_are_deduplicated_before_splitting(tmp_path: Path):
    ds = load_dataset("animals", root=tmp_path)  # not prepared yet: prepares it first
    assert (tmp_path / "animals" / MANIFEST).is_file()
    assert len(ds.train) + len(ds.val) + len(ds.test) == 10000 - 284
    seen = {im.tobytes() for im in ds.train.images}
    assert not any(im.tobytes() in seen for im in np.concatenate([ds.val.images, ds.test.images]))
    assert json.loads((tmp_path / "animals" / MANIFEST).read_text())["dedupe"]["removed"] == 284


def test_splits_are_stratified_and_fixed(small_root: Path):
    ds = load_dataset(small_root / "mnist")
    for split in (ds.train, ds.val, ds.test):
        assert np.bincount(split.labels, minlength=10).min() > 0
    assert ds.train.images.dtype == np.uint8 and ds.train.labels.dtype == np.int64
    assert ds.md5 == dvc_md5(small_root / "mnist") and ds.md5.endswith(".dir")
    again = load_dataset(small_root / "mnist")
    assert np.array_equal(again.test.images, ds.test.images)


def test_prepare_keeps_a_prepared_folder_unless_forced(small_root: Path, tmp_path: Path):
    root = tmp_path / "data"
    prepare(root, ["digits"], limit_per_class=5, progress=False)
    stamp = (root / "digits" / FILES["images"]).stat().st_mtime_ns
    prepare(root, ["digits"], limit_per_class=5, progress=False)
    assert (root / "digits" / FILES["images"]).stat().st_mtime_ns == stamp
    prepare(root, ["digits"], limit_per_class=6, progress=False)  # other recipe: rebuilt
    assert json.loads((root / "digits" / MANIFEST).read_text())["num_images"] == 60


def test_a_failed_write_leaves_nothing_half_written(tmp_path: Path, monkeypatch):
    root = tmp_path / "data"
    prepare(root, ["digits"], limit_per_class=5, progress=False)
    before = _tree(root)
    calls = []

    def failing_save(path, array):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        Path(path).write_bytes(b"partial")

    monkeypatch.setattr(imagedata_store, "save_array", failing_save)
    with pytest.raises(OSError, match="disk full"):
        prepare(root, ["digits", "mnist"], limit_per_class=7, progress=False)
    assert _tree(root) == before  # old digits intact, no mnist, no scratch folders
    assert sorted(p.name for p in root.iterdir()) == ["digits"]


def test_damaged_prepared_folder_is_a_clear_error(small_root: Path, tmp_path: Path):
    import shutil

    folder = tmp_path / "digits"
    shutil.copytree(small_root / "digits", folder)
    np.save(folder / FILES["labels"], np.arange(3, dtype=np.int64))
    with pytest.raises(DataError, match=r"damaged .*lengths.*prepare --root .* --only digits --force"):
        load_dataset(folder)
    np.save(folder / FILES["labels"], np.full(200, 99, dtype=np.int64))
    with pytest.raises(DataError, match="labels.npy must be int64 in 0..9"):
        load_dataset(folder)


def test_bad_prepare_arguments(tmp_path: Path):
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        prepare(tmp_path, ["cifar"], progress=False)
    with pytest.raises(DataError, match="at least 3"):
        prepare(tmp_path, ["digits"], limit_per_class=2, progress=False)
    with pytest.raises(DataError, match="not found"):
        load_dataset("no-such-dataset", root=tmp_path)


def test_load_with_size_resizes(small_root: Path):
    ds = load_dataset(small_root / "digits", size=16)
    assert ds.image_shape == (16, 16) and ds.conversions["resized"] == 200


def test_rebuilding_identical_bytes_leaves_the_folder_in_place(tmp_path: Path):
    root = tmp_path / "data"
    prepare(root, ["digits"], limit_per_class=5, progress=False)
    inode = (root / "digits").stat().st_ino
    prepare(root, ["digits"], limit_per_class=5, progress=False, force=True)  # same recipe, same bytes
    assert (root / "digits").stat().st_ino == inode
    (root / "digits" / MANIFEST).write_text("{}\n")  # damaged: force replaces it
    prepare(root, ["digits"], limit_per_class=5, progress=False, force=True)
    assert json.loads((root / "digits" / MANIFEST).read_text())["num_images"] == 50
    assert sorted(p.name for p in root.iterdir()) == ["digits"]
