"""Fixtures for the export suite: one small real home with two tasks forking at different blocks.

Real everything (embedded Lite0 at 32 px, digits and MNIST images, SQLite registry), tiny
sizes (5 images per class, 1 epoch, fixed branches). The CLI helpers and the shared data
root come from the CLI suite's conftest, so both suites drive forkpoint the same way.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("forkpoint_tests_cli_conftest", Path(__file__).parents[1] / "cli" / "conftest.py")
_cli_conftest = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))  # dataclasses look it up
_spec.loader.exec_module(_cli_conftest)

Cli = _cli_conftest.Cli
QUICK = _cli_conftest.QUICK
data_root = _cli_conftest.data_root  # fixture (session): where built-in datasets are prepared
one_line_error = _cli_conftest.one_line_error  # fixture: the CLI's one-line error contract
cli = _cli_conftest.cli  # fixture: a fresh, uninitialised home


@dataclass
class Exported:
    """A trained home, real sample images from both tasks, and its default ONNX export."""

    cli: Cli
    images: list[Path]
    samples: Path  # folder holding ``images``
    onnx: Path
    report: dict  # `forkpoint export --json`

    def live_logits(self, tasks=None):
        """forkpoint's own logits for ``images``: the registry's live model, ``load_inputs`` with the trunk's recipe."""
        import torch

        from forkpoint.learner.data import load_inputs
        from forkpoint.workflows.home import open_home
        from forkpoint.workflows.live import load_live_model

        with open_home(str(self.cli.home), None) as home:
            live = load_live_model(home, tasks=tasks)
            x = load_inputs(self.images, home.backbone.preprocessing)
            with torch.no_grad():
                return x, {t: v.numpy() for t, v in live.model(x).items()}


def _build(root: Path, data_root: Path) -> Exported:
    c = Cli(root / "home", data_root)
    c.ok("init", "--resolution", "32")
    c.ok("-q", "add-task", "digits", "--data", "digits", "--branch", "15:15", *QUICK)
    c.ok("-q", "add-task", "mnist", "--data", "mnist", "--branch", "13:13", "--val-limit-per-class", "3", "--no-probe", *QUICK)
    samples = root / "samples"
    for source in ("digits", "mnist"):
        c.ok("samples", "--data", source, "--out", str(samples), "--per-class", "1")
        for p in samples.glob("[0-9]_*.png"):  # both datasets name files <class>_<n>.png: keep them apart
            p.rename(samples / f"{source}-{p.name}")
    out = root / "model.onnx"
    report = json.loads(c.ok("-q", "export", "--out", str(out), "--json").stdout)
    (root / "report.json").write_text(json.dumps(report))  # written last: the home is complete
    return Exported(c, sorted(samples.glob("*.png")), samples, out, report)


@pytest.fixture(scope="session")
def exported(tmp_path_factory, data_root, worker_id) -> Exported:
    """Built once per run: under xdist the first worker builds it and the others wait and reuse it (read-only)."""
    if worker_id == "master":
        return _build(tmp_path_factory.mktemp("export"), data_root)
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp().parent / "export-shared"
    with FileLock(str(root) + ".lock"):
        if not (root / "report.json").is_file():
            shutil.rmtree(root, ignore_errors=True)  # a worker that failed half-way leaves no half-built home
            return _build(root, data_root)
    samples = root / "samples"
    report = json.loads((root / "report.json").read_text())
    return Exported(Cli(root / "home", data_root), sorted(samples.glob("*.png")), samples, root / "model.onnx", report)
