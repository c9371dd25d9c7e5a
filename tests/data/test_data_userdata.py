"""User datasets (ImageFolder, CSV): every bad input is converted-and-counted or a one-line error."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from forkpoint.imagedata import ImbalanceWarning, dvc_md5, load_dataset
from forkpoint.contract.errors import DataError


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and ": " in msg  # problem, then the fix
    return msg


def test_image_folder_of_real_digits(digit_folder: Path):
    ds = load_dataset(digit_folder)
    assert ds.class_names == ["one", "two", "zero"]  # sorted folder names
    assert ds.image_shape == (28, 28) and ds.train.images.dtype == np.uint8  # all gray, one size: kept as is
    assert (len(ds.train), len(ds.val), len(ds.test)) == (15, 3, 0)  # 15% of 6 validates (>= 1); no test unless asked
    assert ds.conversions == {}
    assert ds.path == digit_folder and ds.md5 == dvc_md5(digit_folder)
    x, y = ds.train.tensors()
    assert tuple(x.shape) == (15, 1, 28, 28) and float(x.max()) <= 1.0 and y.dtype.is_floating_point is False


def test_mixed_modes_and_sizes_are_converted_and_counted(tmp_path: Path, imgs):
    root = tmp_path / "mixed"
    d = [imgs.digit(5, k) for k in range(8)] + [imgs.digit(7, k) for k in range(8)]
    rgb = lambda a: np.stack([a, a // 2, 255 - a], -1)  # noqa: E731  a genuinely coloured version
    # class "five": every mode Pillow hands us
    imgs.save(root / "five/l.png", d[0])
    imgs.save(root / "five/rgb.png", rgb(d[1]))
    imgs.save(root / "five/rgba.png", Image.fromarray(np.dstack([rgb(d[2]), np.full((28, 28), 128, np.uint8)]), "RGBA"))
    imgs.save(root / "five/gray16.png", Image.fromarray(d[3].astype(np.uint16) * 257))
    imgs.save(root / "five/la.png", Image.fromarray(d[4]).convert("LA"))
    imgs.save(root / "five/palette.png", Image.fromarray(rgb(d[5])).convert("P"))
    imgs.save(root / "five/cmyk.jpg", Image.fromarray(rgb(d[6])).convert("CMYK"))
    imgs.save(root / "five/bilevel.png", Image.fromarray(d[7]).convert("1"))
    # class "seven": other sizes
    for k in range(8):
        imgs.save(root / f"seven/{k}.png", Image.fromarray(d[8 + k]).resize((40 + k, 32)))
    ds = load_dataset(root)
    assert ds.image_shape == (64, 64, 3)  # colour present -> RGB; mixed sizes -> default 64
    assert ds.conversions == {"16bit_to_8bit": 1, "alpha_on_white": 2, "bilevel_to_gray": 1, "cmyk_to_rgb": 1,
                              "gray_to_rgb": 12, "p_to_rgb": 1, "resized": 16}
    # 16-bit scaled (not clipped): its 8-bit copy is the original digit
    from forkpoint.imagedata.convert import to_pixels
    from collections import Counter
    with Image.open(root / "five/gray16.png") as im:
        assert np.array_equal(to_pixels(im, Counter()), d[3])
    # RGBA composited on white: fully transparent black would come out white
    imgs.save(root / "five/rgba.png", Image.new("RGBA", (28, 28), (0, 0, 0, 0)))
    with Image.open(root / "five/rgba.png") as im:
        assert to_pixels(im, Counter()).min() == 255


def test_all_gray_stays_single_channel_and_size_arg_applies(digit_folder: Path):
    ds = load_dataset(digit_folder, size=32)
    assert ds.image_shape == (32, 32) and ds.conversions == {"resized": 18}


def test_corrupt_and_non_image_files_are_listed(digit_folder: Path):
    good = (digit_folder / "one" / "0.png").read_bytes()
    (digit_folder / "one" / "truncated.png").write_bytes(good[: len(good) // 2])
    (digit_folder / "two" / "notes.txt").write_text("not an image")
    (digit_folder / "two" / ".DS_Store").write_bytes(b"\0\1")  # hidden files are skipped
    with pytest.raises(DataError) as e:
        load_dataset(digit_folder)
    msg = _one_line(e)
    assert "2 of 20 files are not readable images" in msg
    assert "one/truncated.png" in msg and "two/notes.txt" in msg and ".DS_Store" not in msg


def test_empty_class_folder(digit_folder: Path):
    (digit_folder / "cats").mkdir()
    with pytest.raises(DataError, match="class folder 'cats' is empty.*add images or remove the folder") as e:
        load_dataset(digit_folder)
    _one_line(e)


def test_single_class_and_no_classes(tmp_path: Path, imgs):
    for k in range(4):
        imgs.save(tmp_path / "only" / "seven" / f"{k}.png", imgs.digit(7, k))
    with pytest.raises(DataError, match="single class \\('seven'\\).*add another class"):
        load_dataset(tmp_path / "only")
    imgs.save(tmp_path / "flat" / "a.png", imgs.digit(1, 0))
    with pytest.raises(DataError, match="no class subfolders"):
        load_dataset(tmp_path / "flat")


def test_tiny_images_are_rejected(digit_folder: Path, imgs):
    imgs.save(digit_folder / "one" / "tiny.png", Image.fromarray(imgs.digit(1, 9)).resize((4, 3)))
    with pytest.raises(DataError, match=r"smaller than 8x8 \(one/tiny.png \(4x3\)\)") as e:
        load_dataset(digit_folder)
    _one_line(e)


def test_too_few_images_per_class(digit_folder: Path):
    for p in sorted((digit_folder / "two").iterdir())[1:]:
        p.unlink()
    with pytest.raises(DataError, match="fewer than 2 distinct images: 'two' \\(1\\)"):
        load_dataset(digit_folder)
    for p in sorted((digit_folder / "one").iterdir())[2:]:
        p.unlink()
    with pytest.raises(DataError, match="fewer than 3 distinct images: 'one' \\(2\\), 'two' \\(1\\)"):
        load_dataset(digit_folder, test_fraction=0.2)  # train, val and test each need one


def test_duplicates_are_removed_before_splitting(digit_folder: Path):
    img = (digit_folder / "one" / "0.png").read_bytes()
    (digit_folder / "one" / "copy.png").write_bytes(img)  # same class: silently deduped, counted
    (digit_folder / "zero" / "mislabelled.png").write_bytes(img)  # other class: deduped and warned
    with pytest.warns(UserWarning, match="also appear under another class"):
        ds = load_dataset(digit_folder)
    assert ds.conversions == {"duplicate_label_conflicts": 1, "duplicates_removed": 2}
    assert len(ds.train) + len(ds.val) + len(ds.test) == 18


def test_huge_imbalance_warns_but_loads(tmp_path: Path, imgs):
    root = tmp_path / "imb"
    for k in range(40):
        imgs.save(root / "many" / f"{k}.png", imgs.digit(3, k))
    for k in range(3):
        imgs.save(root / "few" / f"{k}.png", imgs.digit(8, k))
    with pytest.warns(ImbalanceWarning, match="'many' has 40 images but 'few' only 3"):
        ds = load_dataset(root, test_fraction=0.2)
    assert np.bincount(ds.test.labels).tolist() == [1, 8]


def _csv_dataset(tmp_path: Path, imgs, rows: list[str], header: bool = True) -> Path:
    root = tmp_path / "csvdata"
    for label in range(3):
        for k in range(5):
            imgs.save(root / "img" / f"{label}_{k}.png", imgs.digit(label, k))
    (root / "labels.csv").write_text(("path,label\n" if header else "") + "\n".join(rows) + "\n")
    return root / "labels.csv"


def _rows(names=("0", "1", "2")) -> list[str]:
    return [f"img/{label}_{k}.png,{names[label]}" for label in range(3) for k in range(5)]


def test_csv_with_numeric_labels(tmp_path: Path, imgs):
    csv = _csv_dataset(tmp_path, imgs, _rows(("0", "1", "10")), header=False)
    ds = load_dataset(csv)
    assert ds.class_names == ["0", "1", "10"]  # numeric order, not string order
    assert ds.path == csv and ds.md5 == dvc_md5(csv.parent)
    assert np.array_equal(np.bincount(ds.train.labels), [4, 4, 4])  # 1 of 5 validates, none tests


def test_csv_with_class_names_and_header(tmp_path: Path, imgs):
    ds = load_dataset(_csv_dataset(tmp_path, imgs, _rows(("zero", "one", "two"))))
    assert ds.class_names == ["one", "two", "zero"] and ds.name == "labels"


def test_csv_missing_files_are_listed(tmp_path: Path, imgs):
    rows = _rows() + ["img/gone.png,1", "img/also_gone.png,2"]
    with pytest.raises(DataError, match=r"lists 2 missing files \(row 17 'img/gone.png', row 18") as e:
        load_dataset(_csv_dataset(tmp_path, imgs, rows))
    _one_line(e)


@pytest.mark.parametrize("bad_row, pattern", [
    ("img/0_0.png,", "empty labels \\(row 17\\)"),
    ("img/0_1.png,cat", "mixes numeric labels and names \\(row 17 'cat'\\)"),
    ("img/0_2.png,-1", "negative labels \\(row 17 '-1'\\)"),
    ("img/0_3.png,1,extra", "same 2 or 3 fields on every row.*row 17 \\(3 fields\\)"),
    ("img/0_4.png,2", "lists 'img/0_4.png' twice with different labels \\(rows 6 and 17\\)"),
    ("../outside.png,1", "points outside its folder"),
])
def test_csv_invalid_rows(tmp_path: Path, imgs, bad_row: str, pattern: str):
    (tmp_path / "outside.png").write_bytes(b"")
    with pytest.raises(DataError, match=pattern) as e:
        load_dataset(_csv_dataset(tmp_path, imgs, _rows() + [bad_row]))
    _one_line(e)


def test_csv_single_class_and_empty(tmp_path: Path, imgs):
    with pytest.raises(DataError, match="single class \\('0'\\)"):
        load_dataset(_csv_dataset(tmp_path, imgs, _rows()[:5]))
    with pytest.raises(DataError, match="has no rows"):
        load_dataset(_csv_dataset(tmp_path, imgs, [], header=True))


def test_not_a_dataset_path(tmp_path: Path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="neither a directory nor a .csv"):
        load_dataset(tmp_path / "x.txt")
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "missing")


def test_nothing_is_written_next_to_user_data(digit_folder: Path):
    before = sorted(p.relative_to(digit_folder) for p in digit_folder.rglob("*"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(digit_folder)
    assert sorted(p.relative_to(digit_folder) for p in digit_folder.rglob("*")) == before


def test_a_test_split_is_kept_only_when_asked(digit_folder: Path):
    ds = load_dataset(digit_folder, test_fraction=0.2)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (12, 3, 3)
    with pytest.raises(DataError, match="--test-fraction") as e:
        load_dataset(digit_folder, test_fraction=1.5)
    _one_line(e)


def test_given_train_val_test_folders_are_used_as_given(tmp_path: Path, imgs):
    root = tmp_path / "split"
    for split, n in (("train", 5), ("val", 2), ("test", 3)):
        for label, name in enumerate(["zero", "one"]):
            for k in range(n):
                imgs.save(root / split / name / f"{k}.png", imgs.digit(label, 10 * n + k + (0 if split == "train" else 100)))
    ds = load_dataset(root)
    assert ds.class_names == ["one", "zero"]
    assert (len(ds.train), len(ds.val), len(ds.test)) == (10, 4, 6)
    assert np.bincount(ds.val.labels).tolist() == [2, 2]
    # a class only in val/ has no training images: refused, naming the fix
    imgs.save(root / "val" / "two" / "0.png", imgs.digit(2, 0))
    with pytest.raises(DataError, match="classes that train/ lacks") as e:
        load_dataset(root)
    _one_line(e)


def test_a_csv_split_column_is_honoured(tmp_path: Path, imgs):
    rows = ["path,label,split"]
    for label in (0, 1):
        for k in range(6):
            name = f"d{label}_{k}.png"
            imgs.save(tmp_path / name, imgs.digit(label, k))
            rows.append(f"{name},{label},{'train' if k < 4 else 'test'}")
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(tmp_path / "data.csv")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (8, 0, 4)  # val is carved by the learner
    (tmp_path / "bad.csv").write_text("path,label,split\nd0_0.png,0,holdout\nd1_0.png,1,train\n")
    with pytest.raises(DataError, match="unknown split names") as e:
        load_dataset(tmp_path / "bad.csv")
    _one_line(e)
