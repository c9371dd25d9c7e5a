"""What every section of one run shares: settings, backbone, device, data, progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress

from forkpoint.benchmarks.datasets import Pool, load_pool
from forkpoint.benchmarks.settings import BenchSettings
from forkpoint.learner.backbone import Backbone


@dataclass
class BenchContext:
    settings: BenchSettings
    backbone: Backbone
    device: torch.device
    out: Path
    console: Console
    progress: Progress | None = None
    data_root: Path = Path("data")
    results: dict = field(default_factory=dict)  # section name -> its result dict (later sections may read earlier ones)
    _pools: dict[str, Pool] = field(default_factory=dict)

    def pool(self, name: str) -> Pool:
        if name not in self._pools:
            self._pools[name] = load_pool(name, self.data_root)
        return self._pools[name]

    def step(self, description: str, total: int | None = None):
        """A progress line for the current piece of work; returns a callable that advances it."""
        if self.progress is None:
            return lambda n=1: None
        task_id = self.progress.add_task(description, total=total)
        return lambda n=1: self.progress.advance(task_id, n)
