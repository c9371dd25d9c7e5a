"""``--data``: a built-in name or a path, loaded through the data layer with its DVC version.

The version a task was trained on is the source's DVC md5 and path; the loading options
(per-class limits, their seed, the test fraction, the resolution) and a hash of the
resulting splits are recorded with the task's config, so ``reload_task_data`` can load
the same images again and ``forkpoint reproduce`` can tell when they are not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from forkpoint.imagedata import BUILTIN_NAMES, ImageDataset, limit_per_class, load_dataset
from forkpoint.learner import LabeledImages, TaskData
from forkpoint.contract.errors import DataError
from forkpoint.workflows.errors import DataVersionMismatchError

DATA_ROOT_ENV = "FORKPOINT_DATA"
DEFAULT_DATA_ROOT = Path("data")


@dataclass(frozen=True)
class LoadedData:
    """A dataset ready for ``add_task`` plus where it came from."""

    source: str  # what the user passed to --data
    dataset: ImageDataset
    limit_per_class: int | None
    val_limit_per_class: int | None = None
    seed: int = 0  # of the per-class limit's choice
    test_fraction: float = 0.0
    resolution: int | None = None  # user images are resized to it once; built-ins keep their size

    @property
    def task_data(self) -> TaskData:
        """The learner's view; read-only (memory-mapped) arrays are copied so torch can wrap them."""
        def split(s):
            if s is None or len(s) == 0:
                return None
            return LabeledImages(np.require(s.images, requirements="W"), np.require(s.labels, requirements="W"))

        ds = self.dataset
        return TaskData(list(ds.class_names), split(ds.train), split(ds.val), split(ds.test))

    @property
    def class_names(self) -> list[str]:
        return list(self.dataset.class_names)

    @property
    def md5(self) -> str | None:
        return self.dataset.md5

    @property
    def path(self) -> str | None:
        return str(Path(self.dataset.path).resolve()) if self.dataset.path is not None else None

    @property
    def sizes(self) -> dict[str, int]:
        return {name: len(split) for name, split in self.dataset.splits.items()}

    def splits_sha256(self) -> str:
        """One hash of the class names and every split's pixels and labels, as the learner gets them."""
        h = hashlib.sha256(repr(self.class_names).encode())
        for name, split in sorted(self.dataset.splits.items()):
            if split is None or len(split) == 0:
                continue
            for part in (np.ascontiguousarray(split.images), np.ascontiguousarray(split.labels)):
                h.update(f"{name}:{part.dtype}:{part.shape}".encode())
                h.update(part.tobytes())
        return h.hexdigest()

    def describe(self) -> dict:
        """What goes into the version's config: enough to load the same images again and check they are."""
        return {
            "source": self.source, "dataset": self.dataset.name, "path": self.path, "dvc_md5": self.md5,
            "limit_per_class": self.limit_per_class, "val_limit_per_class": self.val_limit_per_class,
            "seed": self.seed, "test_fraction": self.test_fraction, "resolution": self.resolution,
            "builtin": self.source in BUILTIN_NAMES, "splits_sha256": self.splits_sha256(),
            "sizes": self.sizes,
            "conversions": dict(self.dataset.conversions),
        }


def prepare_note(source: str, root: Path = DEFAULT_DATA_ROOT) -> str | None:
    """What loading ``source`` will write first: a built-in dataset not prepared under ``root`` yet.

    Said before it happens, so nobody finds a ``data/`` folder they did not ask for."""
    from forkpoint.imagedata.store import MANIFEST

    folder = Path(root) / source
    if source not in BUILTIN_NAMES or (folder / MANIFEST).is_file():
        return None
    return (f"preparing built-in dataset {source} into {folder.resolve()} (first use; "
            f"--data-root or {DATA_ROOT_ENV} puts datasets elsewhere)")


def load_task_data(
    source: str,
    root: Path = DEFAULT_DATA_ROOT,
    limit: int | None = None,
    seed: int = 0,
    resolution: int | None = None,
    val_limit: int | None = None,
    test_fraction: float = 0.0,
) -> LoadedData:
    """Load ``source`` (built-in name, prepared folder, ImageFolder or CSV), optionally capped per class.

    ``limit`` keeps at most that many images per class in every split (seeded choice);
    ``val_limit`` caps validation separately (profiling scores every candidate on it).
    User images are resized once to ``resolution``; built-ins keep their native size.
    """
    if val_limit is not None and limit is None:
        raise DataError("a validation limit needs --limit-per-class as well")
    if limit is not None and limit < 2:
        raise DataError(f"--limit-per-class {limit} is too small: keep at least 2 images per class (one for validation)")
    if source not in BUILTIN_NAMES and not Path(source).expanduser().exists():
        raise DataError(
            f"data {source!r} not found: pass a built-in name ({', '.join(BUILTIN_NAMES)}), an ImageFolder directory or a path,label .csv"
        )
    if source in BUILTIN_NAMES:
        dataset = load_dataset(source, root=Path(root))
    else:
        dataset = load_dataset(Path(source).expanduser(), root=Path(root), size=resolution, test_fraction=test_fraction)
    return _limited(source, dataset, limit, val_limit, seed, test_fraction, resolution)


def _limited(source: str, dataset: ImageDataset, limit: int | None, val_limit: int | None, seed: int,
             test_fraction: float, resolution: int | None) -> LoadedData:
    if limit is not None:
        dataset = limit_per_class(dataset, limit, seed=seed, n_test=limit, n_val=val_limit or limit)
    return LoadedData(source, dataset, limit, val_limit or limit, seed, test_fraction,
                      None if source in BUILTIN_NAMES else resolution)


def reload_task_data(recorded: Mapping[str, Any], path: str | None, resolution: int | None) -> LoadedData:
    """The images a version was trained on, from ``path`` (default: where they were recorded).

    ``recorded`` is the version's ``config["data"]``. The folder or CSV must still hold the
    same data version: a different DVC md5 is refused (DataVersionMismatchError, exit 2)
    naming both md5s, before anything is trained. A built-in's recorded path is its
    prepared folder, loaded at its native size as ``add-task`` did.
    """
    where = path or recorded.get("path")
    if not where:
        raise DataError("the version records no data path: pass --data PATH of the images it was trained on")
    source = Path(where).expanduser()
    if not source.exists():
        raise DataError(f"data {source} not found: pass --data PATH of the images the version was trained on "
                        "(`dvc pull`/`dvc checkout` restores a DVC-tracked folder)")
    builtin = bool(recorded.get("builtin", recorded.get("source") in BUILTIN_NAMES))
    tf = float(recorded.get("test_fraction") or 0.0)
    dataset = load_dataset(source, root=source.parent, size=None if builtin else resolution, test_fraction=tf)
    want = recorded.get("dvc_md5")
    if want and dataset.md5 != want:
        raise DataVersionMismatchError(
            f"data at {source} has DVC md5 {dataset.md5}, but the version was trained on {want}: "
            "restore that data version (`dvc checkout`/`dvc pull`) or pass --data PATH of the original images"
        )
    name = str(recorded.get("source") or source) if builtin else str(source)
    return _limited(name, dataset, recorded.get("limit_per_class"), recorded.get("val_limit_per_class"),
                    int(recorded.get("seed") or 0), tf, resolution)


def track_data(path: str) -> str:
    """``dvc add`` a user folder or CSV (for a CSV, its folder: the md5 a version records), returning its md5.

    The ``.dvc`` file written beside it lets ``dvc push``/``dvc pull`` bring exactly this data
    version back later; outside a DVC repository this is an input error naming the fix.
    """
    from forkpoint.imagedata.versioning import dvc_add, find_dvc_root

    p = Path(path).expanduser().resolve()
    if str(path) in BUILTIN_NAMES and not p.exists():
        raise DataError(f"--track-data is for your own folders: built-in {path!r} is already tracked by data.dvc")
    target = p.parent if p.is_file() else p
    root = find_dvc_root(target)
    if root is None or root == target:
        raise DataError(f"--track-data: {target} is not inside a DVC repository: run `dvc init` in a folder above it "
                        "(or pass a folder inside one)")
    return dvc_add(target, root)
