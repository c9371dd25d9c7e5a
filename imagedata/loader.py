"""``load_dataset``: one entry point for built-in names, prepared folders, ImageFolders and CSVs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from forkpoint.imagedata.convert import resize_all
from forkpoint.imagedata.sources import BUILTINS
from forkpoint.imagedata.store import MANIFEST, read_prepared
from forkpoint.imagedata.types import ImageDataset, Split
from forkpoint.imagedata.userdata import has_split_folders, list_csv, list_image_folder, list_split_folders, load_items
from forkpoint.imagedata.versioning import dvc_md5
from forkpoint.contract.errors import DataError


def load_dataset(name_or_path: str | Path, root: Path = Path("data"), size: int | None = None,
                 test_fraction: float = 0.0) -> ImageDataset:
    """Load a dataset with fixed train/val/test splits and its DVC md5.

    A ``str`` naming a built-in ("mnist", "fashion", "animals", "digits") loads
    ``root/<name>/``, preparing it first if needed. Anything else is a path: a prepared
    folder (has manifest.json), an ImageFolder directory, or a ``.csv`` of path,label.
    ``size`` resizes to size x size; for user data with mixed sizes it defaults to 64.
    User data keeps the splits it gives (train/val/test subfolders, a CSV split column);
    otherwise validation is carved from it, and test only with ``test_fraction`` > 0.
    """
    if isinstance(name_or_path, str) and name_or_path in BUILTINS:
        folder = Path(root) / name_or_path
        if not (folder / MANIFEST).is_file():
            from forkpoint.imagedata.prepare import prepare

            prepare(Path(root), [name_or_path], progress=False)
        return load_prepared(folder, size)
    path = Path(name_or_path)
    if path.is_dir():
        if (path / MANIFEST).is_file():
            return load_prepared(path, size)
        items, classes = list_split_folders(path) if has_split_folders(path) else list_image_folder(path)
        ds = load_items(items, classes, path.resolve().name, size, test_fraction)
        return dataclasses.replace(ds, path=path, md5=dvc_md5(path))
    if path.is_file() and path.suffix.lower() == ".csv":
        items, classes = list_csv(path)
        ds = load_items(items, classes, path.stem, size, test_fraction)
        return dataclasses.replace(ds, path=path, md5=dvc_md5(path.parent))
    if not path.exists():
        hint = f"a built-in name ({', '.join(BUILTINS)}), " if isinstance(name_or_path, str) else ""
        raise DataError(f"dataset {str(name_or_path)!r} not found: pass {hint}an ImageFolder directory or a .csv file")
    raise DataError(f"{path} is neither a directory nor a .csv file: pass an ImageFolder directory or a path,label CSV")


def load_prepared(folder: Path, size: int | None = None) -> ImageDataset:
    """A folder written by ``prepare`` (see imagedata.store for the format)."""
    manifest, train, val, test = read_prepared(folder)
    conversions: dict[str, int] = {}
    if size is not None and tuple(train.images.shape[1:3]) != (size, size):
        train, val, test = (Split(resize_all(s.images, size), s.labels) for s in (train, val, test))
        conversions["resized"] = len(train) + len(val) + len(test)
    return ImageDataset(manifest["name"], list(manifest["class_names"]), train, val, test,
                        path=folder, md5=dvc_md5(folder), conversions=conversions)
