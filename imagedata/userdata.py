"""User datasets for new tasks: an ImageFolder directory or a CSV of ``path,label`` rows.

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
from PIL import Image, UnidentifiedImageError

from forkpoint.imagedata.convert import DEFAULT_SIZE, MIN_SIDE, gray_to_rgb, resize_all, to_pixels
from forkpoint.imagedata.splits import DEFAULT_FRACTIONS, DEFAULT_SEED, first_occurrences, stratified_split
from forkpoint.imagedata.types import ImageDataset, Split
from forkpoint.contract.errors import DataError

log = logging.getLogger("imagedata")

MIN_PER_CLASS = 3  # one image each for train, val and test
IMBALANCE_RATIO = 10.0  # largest/smallest class above this -> ImbalanceWarning
_HEADERS = {("path", "label"), ("file", "label"), ("filename", "label"), ("image", "label")}
_INT = re.compile(r"[+-]?\d+")


class ImbalanceWarning(UserWarning):
    """Classes differ in size by more than IMBALANCE_RATIO; training still works, accuracy may mislead."""


@dataclass(frozen=True)
class Item:
    path: Path
    label: str
    shown: str  # how to name the file in messages (as the user wrote it)


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
    wrong = [f"row {i} ({len(r)} fields)" for i, r in rows if len(r) != 2]
    if wrong:
        raise DataError(f"CSV {path} needs exactly 2 fields per row (path,label): {_first(wrong)}; quote paths with commas")
    labels = [(i, r[1].strip()) for i, r in rows]
    _check_labels(path, labels)
    numeric = all(_INT.fullmatch(lab) for _, lab in labels)
    items, missing, outside, seen = [], [], [], {}
    for (i, r), (_, lab) in zip(rows, labels):
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
            items.append(Item(p, label, shown))
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


def _decode(items: list[Item], counts: Counter) -> list[np.ndarray]:
    pixels, bad, tiny = [], [], []
    for it in items:
        try:
            with Image.open(it.path) as img:
                img.load()
                arr = to_pixels(img, counts)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
            bad.append(it.shown)
            continue
        if min(arr.shape[:2]) < MIN_SIDE:
            tiny.append(f"{it.shown} ({arr.shape[1]}x{arr.shape[0]})")
        pixels.append(arr)
    if bad:
        raise DataError(f"{len(bad)} of {len(items)} files are not readable images ({_first(bad)}): remove or re-export them")
    if tiny:
        raise DataError(f"{len(tiny)} images are smaller than {MIN_SIDE}x{MIN_SIDE} ({_first(tiny)}): remove them or use larger images")
    return pixels


def load_items(items: list[Item], class_names: list[str], name: str, size: int | None) -> ImageDataset:
    """Decode, harmonise, dedupe and split; ``path``/``md5`` are left for the caller."""
    counts: Counter = Counter()
    pixels = _decode(items, counts)
    if any(p.ndim == 3 for p in pixels):
        counts["gray_to_rgb"] += sum(p.ndim == 2 for p in pixels)
        pixels = [gray_to_rgb(p) for p in pixels]
    shapes = {p.shape[:2] for p in pixels}
    if size is None and len(shapes) > 1:
        size = DEFAULT_SIZE
    if size is not None:
        counts["resized"] += sum(p.shape[:2] != (size, size) for p in pixels)
        pixels = [resize_all(p[None], size)[0] for p in pixels]
    images = np.stack(pixels)
    index = {c: i for i, c in enumerate(class_names)}
    labels = np.array([index[it.label] for it in items], dtype=np.int64)
    keep = first_occurrences(images)
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
    per_class = np.bincount(labels, minlength=len(class_names))
    small = [f"'{class_names[i]}' ({n})" for i, n in enumerate(per_class) if n < MIN_PER_CLASS]
    if small:
        raise DataError(f"{name}: classes with fewer than {MIN_PER_CLASS} distinct images: {_first(small)}; "
                        f"add images so train, val and test each get one")
    if per_class.max() > IMBALANCE_RATIO * per_class.min():
        big, tiny_c = int(per_class.argmax()), int(per_class.argmin())
        warnings.warn(ImbalanceWarning(
            f"{name}: class '{class_names[big]}' has {per_class[big]} images but '{class_names[tiny_c]}' only "
            f"{per_class[tiny_c]} (>{IMBALANCE_RATIO:g}x): accuracy will be dominated by large classes"), stacklevel=3)
    split = stratified_split(labels, DEFAULT_SEED, DEFAULT_FRACTIONS)
    parts = [Split(images[split == i], labels[split == i]) for i in range(3)]
    conversions = {k: int(v) for k, v in sorted(counts.items()) if v}
    if conversions:
        log.info("%s: converted while loading: %s", name, ", ".join(f"{k}={v}" for k, v in conversions.items()))
    return ImageDataset(name, list(class_names), *parts, path=None, md5=None, conversions=conversions)
