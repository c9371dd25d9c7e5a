"""A few real images of a dataset written as PNG files, to try ``forkpoint predict`` on."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from forkpoint.workflows.datasets import DEFAULT_DATA_ROOT, load_task_data


LAYOUTS = ("flat", "imagefolder")


def write_samples(source: str, out: Path, per_class: int = 1, split: str = "test",
                  data_root: Path = DEFAULT_DATA_ROOT, layout: str = "flat") -> list[Path]:
    """The first ``per_class`` images of each class in ``split`` as PNGs.

    ``flat``: ``out/<class>_<n>.png`` (to try ``predict`` on); ``imagefolder``:
    ``out/<class>/<n>.png``, a labelled folder ``evaluate`` and ``add-task`` read."""
    from PIL import Image

    ds = load_task_data(source, data_root).dataset
    part = ds.splits[split]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for c, name in enumerate(ds.class_names):
        safe = re.sub(r'[^A-Za-z0-9._-]+', '_', name)
        if layout == "imagefolder":
            (out / safe).mkdir(exist_ok=True)
        for n, i in enumerate(np.flatnonzero(part.labels == c)[:per_class]):
            path = out / safe / f"{n}.png" if layout == "imagefolder" else out / f"{safe}_{n}.png"
            Image.fromarray(np.ascontiguousarray(part.images[i])).save(path)
            written.append(path)
    return written
