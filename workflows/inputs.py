"""What a command reads before any model: image paths, labelled folders, live task rows. Torch-free.

Usage errors that need no model (a missing file, a folder without class subfolders, a task
name that is not registered or not live) are found here, before torch loads (10-17 s on
2 CPU cores), so a typo costs a moment, not a model load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from forkpoint.contract.errors import DataError
from forkpoint.registry import UnknownTaskError, UnknownVersionError, VersionRecord
from forkpoint.workflows.errors import ImageInputError
from forkpoint.workflows.home import Home

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def collect_images(paths: list[str | Path]) -> list[Path]:
    """Files as given plus image files found under directories (recursively, sorted)."""
    if not paths:
        raise ImageInputError("no images given: pass image files or directories of images")
    found: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            inside = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not inside:
                raise ImageInputError(f"directory {p} holds no image files ({', '.join(IMAGE_SUFFIXES)}): pass a folder with images")
            found.extend(inside)
        elif p.is_file():
            found.append(p)
        else:
            raise ImageInputError(f"image {p} does not exist: check the path")
    return found


@dataclass(frozen=True)
class LabelledFiles:
    """Image files with their class names, and the data version (DVC md5) they form."""

    source: Path
    paths: list[Path]
    labels: list[str]
    class_names: list[str]
    md5: str


def labelled_files(path: str | Path) -> LabelledFiles:
    """An ImageFolder (its ``test/`` split when it has train/val/test subfolders) or a path,label CSV."""
    # the data layer (and DVC) only when data is read: `audit --no-data` and `predict` never need it
    from forkpoint.imagedata.userdata import has_split_folders, list_csv, list_image_folder, list_split_folders
    from forkpoint.imagedata.versioning import dvc_md5

    p = Path(path).expanduser()
    if p.is_dir():
        if has_split_folders(p):
            items, classes = list_split_folders(p)
            tests = [it for it in items if it.split == "test"]
            items = tests or items
        else:
            items, classes = list_image_folder(p)
        md5 = dvc_md5(p)
    elif p.is_file() and p.suffix.lower() == ".csv":
        items, classes = list_csv(p)
        md5 = dvc_md5(p.parent)
    else:
        raise DataError(f"{p} is neither an ImageFolder directory nor a path,label .csv: pass one of them")
    present = sorted({it.label for it in items}, key=classes.index)
    return LabelledFiles(p.resolve(), [it.path for it in items], [it.label for it in items], present, md5)


def live_records(home: Home, tasks: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> dict[str, VersionRecord]:
    """The live version of every task of this trunk (or just ``tasks``, all of which must exist and be live),
    minus ``exclude``, in task creation order (``tasks``: in the asked order). Reads rows, never weights."""
    wanted = list(dict.fromkeys(tasks)) if tasks is not None else None
    if wanted is not None:
        for name in wanted:
            rec = home.registry.get_task(name)  # UnknownTaskError names the fix
            if rec.live_version is None:
                raise UnknownVersionError(f"task {name!r} has no live version: `forkpoint promote {name} VERSION` first")
    skip = set(exclude)
    found = {r.task: r for r in home.registry.live_records(home.fingerprint, tasks=wanted, exclude=skip)}
    order = wanted if wanted is not None else list(found)
    out = {}
    for name in order:
        if name in skip:
            continue
        if name not in found:
            raise UnknownTaskError(f"task {name!r} is not served by backbone {home.fingerprint[:12]}: list tasks with `forkpoint tasks`")
        out[name] = found[name]
    return out
