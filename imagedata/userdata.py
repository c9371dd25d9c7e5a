"""User datasets for new tasks: an ImageFolder directory or a CSV of ``path,label`` rows.

Labelled images are not thrown away: splits the user gives are used as given (an
ImageFolder with ``train/`` and optional ``val/``, ``test/`` subfolders, or a CSV with a
third ``split`` column); otherwise validation is carved from the images and a test
split is kept only when asked for (``test_fraction``).

Everything fixable is converted and counted (modes, bit depth, alpha, sizes, duplicates);
everything else is a one-line DataError naming the first offending files and the fix.
"""

from __future__ import annotations

import csv
import logging
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from forkpoint.imagedata.convert import DEFAULT_SIZE, MIN_SIDE, fit_square, gray_to_rgb
from forkpoint.imagedata.decode import MAX_PIXELS, ImageTooLargeError, UnreadableImageError, load_pixels
from forkpoint.imagedata.splits import DEFAULT_SEED, first_occurrences, stratified_split
from forkpoint.imagedata.types import ImageDataset, Split
from forkpoint.contract.errors import DataError

log = logging.getLogger("imagedata")

MIN_PER_CLASS = 2  # one image each for train and val (3 when a test split is carved too)
SPLIT_NAMES = ("train", "val", "test")
SPLIT_CODES = {"train": 0, "val": 1, "validation": 1, "test": 2}
VAL_FRACTION = 0.15
IMBALANCE_RATIO = 10.0  # largest/smallest class above this -> ImbalanceWarning
_HEADERS = {("path", "label"), ("file", "label"), ("filename", "label"), ("image", "label")}
_HEADERS |= {h + ("split",) for h in _HEADERS}
_INT = re.compile(r"[+-]?\d+")


class ImbalanceWarning(UserWarning):
    """Classes differ in size by more than IMBALANCE_RATIO; training still works, accuracy may mislead."""


@dataclass(frozen=True)
class Item:
    path: Path
    label: str
    shown: str  # how to name the file in messages (as the user wrote it)
    split: str | None = None  # "train" | "val" | "test" when the user gave the split


def _first(names: list[str], n: int = 3) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def _visible(name: str) -> bool:
    return not name.startswith(".")


def list_image_folder(folder: Path) -> tuple[list[Item], list[str]]:
    """Items of an ImageFolder (one subfolder per class, searched recursively) and sorted class names."""
    if not folder.is_dir():
        raise DataError(f"{folder} is not a directory: pass an ImageFolder directory or a .csv file")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and _visible(p.name))
    if not classes:
        raise DataError(f"{folder} has no class subfolders: put each class's images in its own subfolder")
    items: list[Item] = []
    empty = []
    for c in classes:
        files = sorted(p for p in (folder / c).rglob("*")
                       if p.is_file() and all(_visible(q) for q in p.relative_to(folder).parts))
        if not files:
            empty.append(c)
        items += [Item(p, c, str(p.relative_to(folder))) for p in files]
    if empty:
        raise DataError(f"class folder '{empty[0]}' is empty ({len(empty)} empty: {_first(empty)}): "
                        f"add images or remove the folder")
    _check_class_count(classes, folder)
    return items, classes


def has_split_folders(folder: Path) -> bool:
    """An ImageFolder of splits: a ``train/`` folder and nothing at the top but train/val/validation/test."""
    if not (folder / "train").is_dir():
        return False
    tops = {p.name for p in folder.iterdir() if p.is_dir() and _visible(p.name)}
    return tops <= set(SPLIT_CODES)


def list_split_folders(folder: Path) -> tuple[list[Item], list[str]]:
    """Items of ``train/`` (+ ``val/``, ``test/``), each an ImageFolder over the same classes."""
    items, classes = list_image_folder(folder / "train")
    items = [Item(it.path, it.label, f"train/{it.shown}", "train") for it in items]
    for sub in sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name != "train" and _visible(p.name)):
        split_items, split_classes = _list_classes_subset(folder / sub, classes)
        name = "test" if sub == "test" else "val"
        items += [Item(it.path, it.label, f"{sub}/{it.shown}", name) for it in split_items]
    return items, classes


def _list_classes_subset(folder: Path, classes: list[str]) -> tuple[list[Item], list[str]]:
    found = sorted(p.name for p in folder.iterdir() if p.is_dir() and _visible(p.name))
    unknown = [c for c in found if c not in classes]
    if unknown:
        raise DataError(f"{folder} has classes that train/ lacks ({_first(unknown)}): every class needs training images; "
                        f"add them to train/ or remove them")
    items = []
    for c in found:
        items += [Item(p, c, str(p.relative_to(folder))) for p in sorted((folder / c).rglob("*"))
                  if p.is_file() and all(_visible(q) for q in p.relative_to(folder).parts)]
    return items, found


def _check_class_count(classes: list[str], where: Path) -> None:
    if len(classes) < 2:
        raise DataError(f"{where} has a single class ({classes[0]!r}): a classifier needs at least two; add another class")


def list_csv(path: Path) -> tuple[list[Item], list[str]]:
    """Items of a ``path,label`` CSV (header optional; paths relative to the CSV's folder)."""
    base = path.parent.resolve()
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [(i, r) for i, r in enumerate(csv.reader(f), start=1) if r and any(x.strip() for x in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read CSV {path} ({exc}): save it as UTF-8 text with path,label rows") from exc
    if rows and tuple(x.strip().lower() for x in rows[0][1]) in _HEADERS:
        rows = rows[1:]
    if not rows:
        raise DataError(f"CSV {path} has no rows: add one 'path,label' line per image")
    width = len(rows[0][1]) if len(rows[0][1]) in (2, 3) else 2
    wrong = [f"row {i} ({len(r)} fields)" for i, r in rows if len(r) != width]
    if wrong:
        raise DataError(f"CSV {path} needs the same 2 or 3 fields on every row (path,label[,split]): {_first(wrong)}; quote paths with commas")
    splits = [r[2].strip().lower() for _, r in rows] if width == 3 else [None] * len(rows)
    bad_split = [f"row {i} {r[2].strip()!r}" for (i, r), sp in zip(rows, splits) if sp is not None and sp not in SPLIT_CODES]
    if bad_split:
        raise DataError(f"CSV {path} has unknown split names ({_first(bad_split)}): use train, val or test")
    if width == 3 and "train" not in splits:
        raise DataError(f"CSV {path} has a split column but no 'train' rows: mark the training images as train")
    labels = [(i, r[1].strip()) for i, r in rows]
    _check_labels(path, labels)
    numeric = all(_INT.fullmatch(lab) for _, lab in labels)
    items, missing, outside, seen = [], [], [], {}
    for (i, r), (_, lab), sp in zip(rows, labels, splits):
        shown = r[0].strip()
        p = (base / shown).resolve()
        if not p.is_relative_to(base):
            outside.append(f"row {i} '{shown}'")
        elif not p.is_file():
            missing.append(f"row {i} '{shown}'")
        label = str(int(lab)) if numeric else lab
        if p in seen and seen[p][1] != label:
            raise DataError(f"CSV {path} lists '{shown}' twice with different labels (rows {seen[p][0]} and {i}): keep one")
        if p not in seen:
            seen[p] = (i, label)
            items.append(Item(p, label, shown, None if sp is None else ("val" if sp == "validation" else sp)))
    if outside:
        raise DataError(f"CSV {path} points outside its folder ({_first(outside)}): move the images under {base} "
                        f"so the data can be versioned as one folder")
    if missing:
        raise DataError(f"CSV {path} lists {len(missing)} missing files ({_first(missing)}): "
                        f"fix the paths (relative to {base}) or drop those rows")
    names = sorted({it.label for it in items}, key=(lambda s: int(s)) if numeric else None)
    _check_class_count(names, path)
    return items, names


def _check_labels(path: Path, labels: list[tuple[int, str]]) -> None:
    empty = [f"row {i}" for i, lab in labels if not lab]
    if empty:
        raise DataError(f"CSV {path} has empty labels ({_first(empty)}): give every row a class")
    ints = [(i, lab) for i, lab in labels if _INT.fullmatch(lab)]
    if ints and len(ints) != len(labels):
        odd = [f"row {i} {lab!r}" for i, lab in labels if not _INT.fullmatch(lab)]
        raise DataError(f"CSV {path} mixes numeric labels and names ({_first(odd)}): use one kind of label")
    negative = [f"row {i} {lab!r}" for i, lab in ints if int(lab) < 0]
    if negative:
        raise DataError(f"CSV {path} has negative labels ({_first(negative)}): labels must be class names or ids >= 0")


def _decode(items: list[Item], counts: Counter, size: int | None) -> list[np.ndarray]:
    """Every item through the one decoder predict uses too (bounded memory, same pixels)."""
    pixels, bad, huge, tiny = [], [], [], []
    for it in items:
        try:
            decoded = load_pixels(it.path, size, counts)
        except ImageTooLargeError as exc:
            huge.append(f"{it.shown} ({exc.detail})")
            continue
        except UnreadableImageError:
            bad.append(it.shown)
            continue
        w, h = decoded.source_size
        if min(w, h) < MIN_SIDE:
            tiny.append(f"{it.shown} ({w}x{h})")
        pixels.append(decoded.pixels)
    if huge:
        raise DataError(f"{len(huge)} images have more than {MAX_PIXELS:,} pixels ({_first(huge)}): "
                        f"downscale them (e.g. to 4096 px on the longer side) or remove them")
    if bad:
        raise DataError(f"{len(bad)} of {len(items)} files are not readable images ({_first(bad)}): remove or re-export them")
    if tiny:
        raise DataError(f"{len(tiny)} images are smaller than {MIN_SIDE}x{MIN_SIDE} ({_first(tiny)}): remove them or use larger images")
    return pixels


def load_items(items: list[Item], class_names: list[str], name: str, size: int | None,
               test_fraction: float = 0.0) -> ImageDataset:
    """Decode, harmonise, dedupe and split; ``path``/``md5`` are left for the caller.

    Items that carry a split keep it. Otherwise validation gets ~15% of each class and
    test ``test_fraction`` (default none: every labelled image trains or validates).
    """
    if not 0.0 <= test_fraction < 0.9:
        raise DataError(f"--test-fraction {test_fraction} must be in [0, 0.9): the share of each class held out for testing")
    given = [it.split for it in items]
    if any(g is not None for g in given) and any(g is None for g in given):
        raise DataError(f"{name}: some images have a split and some do not: give every image one, or none")
    counts: Counter = Counter()
    pixels = _decode(items, counts, size)
    if any(p.ndim == 3 for p in pixels):
        counts["gray_to_rgb"] += sum(p.ndim == 2 for p in pixels)
        pixels = [gray_to_rgb(p) for p in pixels]
    if size is None and len({p.shape[:2] for p in pixels}) > 1:
        counts["resized"] += sum(p.shape[:2] != (DEFAULT_SIZE, DEFAULT_SIZE) for p in pixels)
        pixels = [fit_square(p, DEFAULT_SIZE) for p in pixels]
    images = np.stack(pixels)
    index = {c: i for i, c in enumerate(class_names)}
    labels = np.array([index[it.label] for it in items], dtype=np.int64)
    codes = np.array([SPLIT_CODES[g] if g is not None else -1 for g in given], dtype=np.int8)
    keep = first_occurrences(images)
    codes = codes[keep] if len(keep) < len(labels) else codes
    if len(keep) < len(labels):
        counts["duplicates_removed"] += len(labels) - len(keep)
        kept = {images[i].tobytes(): labels[i] for i in keep}
        dropped = np.setdiff1d(np.arange(len(labels)), keep)
        conflicts = [items[i].shown for i in dropped if kept[images[i].tobytes()] != labels[i]]
        if conflicts:
            counts["duplicate_label_conflicts"] += len(conflicts)
            warnings.warn(f"{name}: {len(conflicts)} images also appear under another class ({_first(conflicts)}); "
                          f"kept the first copy", stacklevel=3)
        images, labels = images[keep], labels[keep]
    user_split = bool(len(codes)) and codes[0] >= 0
    per_class = np.bincount(labels[codes == 0] if user_split else labels, minlength=len(class_names))
    need = 1 if user_split else MIN_PER_CLASS + (1 if test_fraction > 0 else 0)
    small = [f"'{class_names[i]}' ({n})" for i, n in enumerate(per_class) if n < need]
    if small:
        where = "training images" if user_split else "distinct images"
        raise DataError(f"{name}: classes with fewer than {need} {where}: {_first(small)}; "
                        f"add images so {'train' if user_split else 'train and val' + (' and test' if test_fraction > 0 else '')} each get one")
    if per_class.max() > IMBALANCE_RATIO * per_class.min():
        big, tiny_c = int(per_class.argmax()), int(per_class.argmin())
        warnings.warn(ImbalanceWarning(
            f"{name}: class '{class_names[big]}' has {per_class[big]} images but '{class_names[tiny_c]}' only "
            f"{per_class[tiny_c]} (>{IMBALANCE_RATIO:g}x): accuracy will be dominated by large classes"), stacklevel=3)
    split = codes if user_split else stratified_split(labels, DEFAULT_SEED, {"val": VAL_FRACTION, "test": test_fraction})
    parts = [Split(images[split == i], labels[split == i]) for i in range(3)]
    conversions = {k: int(v) for k, v in sorted(counts.items()) if v}
    if conversions:
        log.info("%s: converted while loading: %s", name, ", ".join(f"{k}={v}" for k, v in conversions.items()))
    return ImageDataset(name, list(class_names), *parts, path=None, md5=None, conversions=conversions)
