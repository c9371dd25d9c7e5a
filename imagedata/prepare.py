"""Materialise the built-in datasets into ``<root>/<name>/`` deterministically.

Same sources + same recipe -> byte-identical folders on every machine, which is what lets
the committed ``data.dvc`` match a fresh ``prepare``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from forkpoint.imagedata.sources import BUILTINS, FASHION_APT, Builtin
from forkpoint.imagedata.splits import DEFAULT_FRACTIONS, DEFAULT_SEED, cap_per_class, first_occurrences, stratified_split
from forkpoint.imagedata.store import FORMAT, MANIFEST, read_manifest, write_prepared
from forkpoint.contract.errors import DataError

log = logging.getLogger("imagedata")

# When a source has no test split of its own: 70/10/20 per class. With one (Fashion-MNIST):
# its test split is kept and 10% of each class of the rest becomes val.
SPLIT_METHOD = "stratified per class; order = BLAKE2b(key=seed, index); val/test = round(fraction * class size)"


def recipe(spec: Builtin, limit_per_class: int | None) -> dict[str, Any]:
    """Everything besides the source data that decides the output bytes."""
    splits = {"method": SPLIT_METHOD, "seed": DEFAULT_SEED, "val_fraction": DEFAULT_FRACTIONS["val"],
              "test_fraction": "source's own test split" if spec.own_test else DEFAULT_FRACTIONS["test"]}
    return {"format": FORMAT, "name": spec.name, "limit_per_class": limit_per_class, "splits": splits}


def build_builtin(spec: Builtin, limit_per_class: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(images, labels, split codes, manifest) for one built-in dataset."""
    raw = spec.read()
    if (raw.official_test is not None) != spec.own_test:
        raise DataError(f"{spec.name}: reader and spec disagree about an own test split (a bug in imagedata.sources)")
    if raw.labels.size and (raw.labels.min() < 0 or raw.labels.max() >= len(spec.class_names)):
        raise DataError(f"{spec.name}: source labels fall outside 0..{len(spec.class_names) - 1}: reinstall its package")
    keep = first_occurrences(raw.images)
    conflicts = _label_conflicts(raw.images, raw.labels, keep)
    images, labels = raw.images[keep], raw.labels[keep]
    test = raw.official_test[keep] if raw.official_test is not None else None
    if limit_per_class is not None:
        if limit_per_class < 3:
            raise DataError(f"--limit-per-class {limit_per_class} is too small: use at least 3 (one image per split)")
        sel = cap_per_class(labels, limit_per_class, DEFAULT_SEED, groups=test)
        images, labels = images[sel], labels[sel]
        test = test[sel] if test is not None else None
    split = stratified_split(labels, DEFAULT_SEED, DEFAULT_FRACTIONS, fixed_test=test)
    manifest = {
        **recipe(spec, limit_per_class),
        "class_names": list(spec.class_names),
        "source": dict(spec.about),
        "dedupe": {"rule": "exact pixel duplicates removed before splitting; first occurrence kept",
                   "removed": int(len(raw.labels) - len(keep)), "label_conflicts": conflicts},
    }
    return images, labels, split, manifest


def _label_conflicts(images: np.ndarray, labels: np.ndarray, keep: np.ndarray) -> int:
    """How many removed duplicates carried a different label than the kept copy."""
    if len(keep) == len(labels):
        return 0
    first = {images[i].tobytes(): labels[i] for i in keep}
    dropped = np.setdiff1d(np.arange(len(labels)), keep)
    return int(sum(first[images[i].tobytes()] != labels[i] for i in dropped))


def is_prepared(folder: Path, spec: Builtin, limit_per_class: int | None) -> bool:
    """True when ``folder`` holds a complete dataset made with this recipe."""
    if not (folder / MANIFEST).is_file():
        return False
    try:
        manifest = read_manifest(folder)
    except DataError:
        return False
    want = recipe(spec, limit_per_class)
    return all(manifest.get(k) == v for k, v in want.items()) and all(
        (folder / f).is_file() for f in manifest.get("files", {}).values())


def prepare(root: Path = Path("data"), names: Sequence[str] | None = None, limit_per_class: int | None = None,
            progress: bool = True, force: bool = False) -> dict[str, Path]:
    """Prepare built-in datasets into ``root``; returns {name: folder}.

    ``names=None`` means all four, with Fashion-MNIST skipped (and a note logged) when its
    Debian package is missing; naming it explicitly makes a missing package an error.
    Folders already prepared with the same recipe are kept unless ``force``.
    """
    root = Path(root)
    explicit = names is not None
    wanted = list(dict.fromkeys(names)) if explicit else list(BUILTINS)
    unknown = [n for n in wanted if n not in BUILTINS]
    if unknown:
        raise DataError(f"unknown dataset {unknown[0]!r}: choose from {', '.join(BUILTINS)}")
    if not explicit and not BUILTINS["fashion"].available():
        wanted.remove("fashion")
        log.warning("skipping Fashion-MNIST: its Debian package is not installed (run `%s`)", FASHION_APT)
    done: dict[str, Path] = {}
    with _progress(progress, len(wanted)) as step:
        for name in wanted:
            folder = root / name
            if not force and is_prepared(folder, BUILTINS[name], limit_per_class):
                step(name, f"already prepared in {folder}", advance=True)
            else:
                step(name, "reading source")
                images, labels, split, manifest = build_builtin(BUILTINS[name], limit_per_class)
                step(name, f"writing {len(labels):,} images")
                write_prepared(folder, images, labels, split, manifest)
                step(name, f"{len(labels):,} images -> {folder}", advance=True)
            done[name] = folder
    return done


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator:
    """A ``step(name, status, advance=False)`` callback drawing a rich progress bar (or nothing)."""
    if not enabled:
        yield lambda *a, **k: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  transient=True) as bar:
        task = bar.add_task("prepare", total=total)

        def step(name: str, status: str, advance: bool = False) -> None:
            bar.update(task, description=f"{name}: {status}", advance=1 if advance else 0)
            if advance:
                bar.console.print(f"{name}: {status}")

        yield step
