"""Task streams: which datasets become which tasks, in which order, with how many images.

A stream is a list of tasks built from the data layer's real offline datasets. Every
strategy of a run sees exactly these images: ``per_class`` training images per class
(the low-data regimes: 10/50/100) and ``test_per_class`` test images per class. The
datasets' own validation splits are not used, so a low-data run really has only
``per_class`` labelled images per class; SubTuning and the learner's baselines (linear,
full) carve their validation images from them, Avalanche's strategies train on all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from forkpoint.imagedata import ImageDataset, limit_per_class, load_dataset, subset_classes
from forkpoint.learner import LabeledImages, TaskData
from forkpoint.contract.errors import ConfigError

DOMAINS = ("mnist", "fashion", "animals", "digits")
FASHION_PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))
NAMED = ("domains", "split")


@dataclass(frozen=True)
class StreamOptions:
    """How much of each dataset a stream uses (recorded with the run; resume checks it)."""

    per_class: int | None = 50
    test_per_class: int | None = 50
    seed: int = 0
    num_tasks: int | None = None
    data_root: Path = Path("data")
    size: int | None = None  # resize user folders to size x size when loading (None: data layer's default)
    # share of each class held out as the test split of a dataset folder without one of its own: a stream
    # measures forgetting on test images, and a folder of train images alone would leave a task without any
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        for what, n in (("images per class", self.per_class), ("test images per class", self.test_per_class)):
            if n is not None and n < 2:
                raise ConfigError(f"{what} is {n}: use 2 or more (SubTuning needs a validation image per class)")
        if self.num_tasks is not None and self.num_tasks < 1:
            raise ConfigError(f"number of tasks {self.num_tasks} must be >= 1")
        if not 0.0 < self.test_fraction < 0.9:
            raise ConfigError(f"--test-fraction {self.test_fraction} must be in (0, 0.9): the share of each class of a "
                              "folder without a test split held out to measure forgetting")

    def to_dict(self) -> dict:
        return {"per_class": self.per_class, "test_per_class": self.test_per_class, "seed": self.seed,
                "num_tasks": self.num_tasks, "size": self.size, "test_fraction": self.test_fraction}


@dataclass(frozen=True)
class StreamTask:
    """One experience of the stream: a task name (registry-safe) and its dataset slice."""

    name: str
    dataset: ImageDataset

    @property
    def class_names(self) -> list[str]:
        return list(self.dataset.class_names)

    def task_data(self) -> TaskData:
        """Train and test only: the dataset's own validation split is left out on purpose."""
        ds = self.dataset
        return TaskData(self.class_names, LabeledImages(ds.train.images, ds.train.labels), None,
                        LabeledImages(ds.test.images, ds.test.labels))


@dataclass(frozen=True)
class Stream:
    name: str  # "domains", "split" or "custom"
    tasks: list[StreamTask]
    options: StreamOptions

    def describe(self) -> dict:
        return {
            "name": self.name,
            "options": self.options.to_dict(),
            "tasks": [
                {"name": t.name, "dataset": t.dataset.name, "classes": t.class_names,
                 "train": len(t.dataset.train), "test": len(t.dataset.test),
                 "data_md5": t.dataset.md5, "data_path": str(t.dataset.path) if t.dataset.path else None}
                for t in self.tasks
            ],
        }


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return s or "task"


def task_name(stream: str, dataset: str, taken: set[str]) -> str:
    """``<stream>.<dataset>``, lower-cased to registry-safe characters, unique within the stream."""
    base = f"{_slug(stream)}.{_slug(dataset)}"[:60]
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    return name


def _limit(ds: ImageDataset, opts: StreamOptions) -> ImageDataset:
    if opts.per_class is None and opts.test_per_class is None:
        return ds
    n_train = opts.per_class if opts.per_class is not None else max(len(ds.train), 1)
    return limit_per_class(ds, n_train, seed=opts.seed, n_test=opts.test_per_class)


def _datasets(benchmark: list[str], opts: StreamOptions) -> tuple[str, list[ImageDataset]]:
    if len(benchmark) == 1 and benchmark[0] == "domains":
        return "domains", [load_dataset(n, root=opts.data_root) for n in DOMAINS]
    if len(benchmark) == 1 and benchmark[0] == "split":
        fashion = load_dataset("fashion", root=opts.data_root)
        return "split", [subset_classes(fashion, list(p), f"fashion-{p[0]}-{p[1]}") for p in FASHION_PAIRS]
    named = [b for b in benchmark if b in NAMED]
    if named:
        raise ConfigError(f"benchmark '{named[0]}' cannot be combined with dataset folders: pass either one name ({', '.join(NAMED)}) or folders")
    return "custom", [load_dataset(Path(p), root=opts.data_root, size=opts.size, test_fraction=opts.test_fraction)
                      for p in benchmark]


def load_stream(benchmark: str | list[str] | tuple[str, ...], opts: StreamOptions = StreamOptions()) -> Stream:
    """The stream named ``benchmark`` ("domains", "split") or built from dataset folders, in order."""
    items = [benchmark] if isinstance(benchmark, str) else list(benchmark)
    if not items:
        raise ConfigError(f"no benchmark given: pass one of {', '.join(NAMED)} or one or more dataset folders")
    name, datasets = _datasets(items, opts)
    if opts.num_tasks is not None:
        if opts.num_tasks > len(datasets):
            raise ConfigError(f"--tasks {opts.num_tasks} exceeds the {len(datasets)} tasks of stream '{name}': use at most {len(datasets)}")
        datasets = datasets[:opts.num_tasks]
    taken: set[str] = set()
    tasks = []
    for ds in datasets:
        t = StreamTask(task_name(name, ds.name, taken), _limit(ds, opts))
        for split in ("train", "test"):
            if len(getattr(t.dataset, split).labels) == 0:
                raise ConfigError(f"task {t.name} ({ds.name}) has no {split} images: give its folder {split} images "
                                  "(or a larger --test-fraction)")
        taken.add(t.name)
        tasks.append(t)
    return Stream(name, tasks, opts)
