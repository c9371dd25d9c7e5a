"""Progress for long work: rich bars with ETA on a terminal, one log line per phase always.

The learner reports phases through a tiny subset of rich's Progress API (add_task,
advance, update); :class:`PhaseProgress` takes those calls, shows them as bars when a
display is wanted, and logs each phase start so ``-v`` runs (and scripts watching
stderr) see where the work is.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

log = logging.getLogger("forkpoint")


def rich_progress(console: Console | None = None) -> Progress:
    """Bars with done/total, elapsed time and ETA."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


class PhaseProgress:
    """Learner phase updates -> an optional rich Progress, plus an INFO log line per phase."""

    def __init__(self, progress: Progress | None = None) -> None:
        self.progress = progress
        self._ids = itertools.count()

    def add_task(self, description: str, total: float | None = None, **kwargs: Any) -> Any:
        log.info("phase: %s (%s steps)", description, total)
        if self.progress is not None:
            return self.progress.add_task(description, total=total, **kwargs)
        return next(self._ids)

    def advance(self, task_id: Any, advance: float = 1) -> None:
        if self.progress is not None:
            self.progress.advance(task_id, advance)

    def update(self, task_id: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(task_id, **kwargs)
