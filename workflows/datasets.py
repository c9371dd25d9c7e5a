"""``--data``: a built-in name or a path, loaded through the data layer with its DVC version.

The version a task was trained on is the source's DVC md5 and path; how many images per
class were used is recorded with the task's config, so a version can be reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forkpoint.imagedata import BUILTIN_NAMES, ImageDataset, limit_per_class, load_dataset
from forkpoint.learner import LabeledImages, TaskData
from forkpoint.contract.errors import DataError

DATA_ROOT_ENV = "FORKPOINT_DATA"
DEFAULT_DATA_ROOT = Path("data")


@dataclass(frozen=True)
class LoadedData:
    """A dataset ready for ``add_task`` plus where it came from."""

    source: str  # what the user passed to --data
    dataset: ImageDataset
    limit_per_class: int | None
    val_limit_per_class: int | None = None

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

    def describe(self) -> dict:
        """What goes into the version's config: enough to load the same images again."""
        return {
            "source": self.source, "dataset": self.dataset.name, "path": self.path, "dvc_md5": self.md5,
            "limit_per_class": self.limit_per_class, "val_limit_per_class": self.val_limit_per_class,
            "sizes": self.sizes,
            "conversions": dict(self.dataset.conversions),
        }


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
    if limit is not None:
        dataset = limit_per_class(dataset, limit, seed=seed, n_test=limit, n_val=val_limit or limit)
    return LoadedData(source, dataset, limit, val_limit or limit)
