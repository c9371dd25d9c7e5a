"""add-task's phase bars: each phase closes finished, and a log file gets every phase, not only the last."""

from __future__ import annotations

import io

from rich.console import Console

from forkpoint.learner.task import _Phases
from forkpoint.workflows.progress import rich_progress


def test_every_phase_reaches_a_log_file_finished_even_when_it_ends_early():
    log = io.StringIO()
    progress = rich_progress(Console(file=log, force_terminal=False, width=120))
    with progress:
        phases = _Phases(progress, "mnist")
        phases.start("profile", 3)
        phases.advance(3)
        phases.start("select", 3)
        phases.advance(2)  # greedy stopped after two of its three possible steps
        phases.start("train blocks.6.0", 3)
        phases.advance(2)  # early stopping after two of three validation passes
        phases.done()
    text = log.getvalue()
    for what in ("mnist: profile", "mnist: select", "mnist: train blocks.6.0"):
        line = next(row for row in text.splitlines() if what in row)
        assert "3/3" in line, line
    assert "2/3" not in text


def test_no_progress_is_silent():
    phases = _Phases(None, "mnist")
    phases.start("profile", 2)
    phases.advance()
    phases.done()
