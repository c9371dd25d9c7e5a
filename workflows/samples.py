"""A few real images of a dataset written as PNG files, to try ``forkpoint predict`` on."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from forkpoint.workflows.datasets import DEFAULT_DATA_ROOT, load_task_data


def write_samples(source: str, out: Path, per_class: int = 1, split: str = "test",
                  data_root: Path = DEFAULT_DATA_ROOT) -> list[Path]:
    """``out/<class>_<n>.png`` for the first ``per_class`` images of each class in ``split``."""
    from PIL import Image

    ds = load_task_data(source, data_root).dataset
    part = ds.splits[split]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for c, name in enumerate(ds.class_names):
        for n, i in enumerate(np.flatnonzero(part.labels == c)[:per_class]):
            path = out / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}_{n}.png"
            Image.fromarray(np.ascontiguousarray(part.images[i])).save(path)
            written.append(path)
    return written
