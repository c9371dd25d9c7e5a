"""Fixtures for the web UI suite: one small real home, served by uvicorn, driven by headless chromium.

The home is real (embedded Lite0 at 32 px, real digits/MNIST/Fashion-MNIST images, a real
SQLite registry, a real ``forkpoint stream run`` folder) and built once per test session:
under pytest-xdist the first worker builds it and the others wait on a file lock and reuse
it. Tests that move a live pointer work on a copy (``own_home``).

Browser tests need Debian's ``chromium`` and ``chromium-driver``; without them they skip
with the reason, except under CI=true where they fail (``.ci/run`` installs both).
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import torch
from click.testing import CliRunner

from forkpoint.cli import main

torch.set_num_threads(1)  # two xdist workers on two cores

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--limit-per-class", "5", "--epochs", "1", "--patience", "0", "--min-steps", "5", "--augment-views", "0"]
RUN = "stream-a"


def _load_script():
    """scripts/ui-screenshots.py: the tests take their screenshots with the same code as the docs."""
    spec = importlib.util.spec_from_file_location("ui_screenshots", ROOT / "scripts" / "ui-screenshots.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


shots = _load_script()


@pytest.fixture(scope="session", name="shots")
def shots_module():
    """scripts/ui-screenshots.py as a module: ``serve``, ``ui_app``, ``capture``, ``wait_for_images``, ``SHOTS``."""
    return shots


@dataclass
class UiHome:
    home: Path
    reports: Path
    data_root: Path
    run: str = RUN  # the stream run folder under ``reports``

    def cli(self, *args: str) -> str:
        """Run ``forkpoint --home HOME ARGS`` in-process; fails the test on a non-zero exit."""
        env = {"FORKPOINT_DATA": str(self.data_root), "FORKPOINT_HOME": None, "FORKPOINT_DB": None, "COLUMNS": "200"}
        result = CliRunner().invoke(main, ["--home", str(self.home), *args], env=env, catch_exceptions=False)
        assert result.exit_code == 0, f"forkpoint {' '.join(args)} failed ({result.exit_code}): {result.output}"
        return result.stdout

    def json(self, *args: str) -> dict:
        return json.loads(self.cli(*args, "--json"))


def _build(root: Path) -> UiHome:
    """digits v1 (fixed branch) and v2 (profiled, live; a description with markup in it), mnist v1 (head only),
    and a two-task stream run (linear probe: seconds) in ``reports/stream-a``."""
    ui = UiHome(root / "home", root / "reports", root / "data")
    ui.cli("init", "--resolution", "32")
    ui.cli("-q", "add-task", "digits", "--data", "digits", "--branch", "14:15", *QUICK)
    ui.cli("-q", "add-task", "digits", "--data", "digits", "--candidates", "15:16", "--profile-epochs", "1",
           "--budget-blocks", "1", "--no-probe", "--seed", "1", "--description", "second <b>try</b> & more", *QUICK)
    ui.cli("-q", "add-task", "mnist", "--data", "mnist", "--branch", "probe", *QUICK)
    ui.cli("-q", "stream", "run", "-b", "domains", "--tasks", "2", "--strategy", "linear", "--per-class", "5",
           "--test-per-class", "5", "--epochs", "1", "--resolution", "32", "--out", str(ui.reports / RUN))
    return ui


@pytest.fixture(scope="session")
def built(tmp_path_factory, worker_id) -> UiHome:
    """The shared home, built once per session (xdist workers share it through a lock file)."""
    if worker_id == "master":
        return _build(tmp_path_factory.mktemp("ui"))
    root = tmp_path_factory.getbasetemp().parent / "ui-shared"
    root.mkdir(exist_ok=True)
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            done, failed = root / "built", root / "failed"
            if failed.exists():
                pytest.fail(f"building the shared UI home failed in another worker: {failed.read_text()}")
            if not done.exists():
                try:
                    _build(root)
                except BaseException as exc:
                    failed.write_text(repr(exc))
                    raise
                done.write_text("ok")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return UiHome(root / "home", root / "reports", root / "data")


@pytest.fixture
def own_home(built, tmp_path) -> UiHome:
    """A private copy of the shared home (database, weights, reports) that a test may change."""
    shutil.copytree(built.home, tmp_path / "home")
    return UiHome(tmp_path / "home", built.reports, built.data_root)


def _need_browser() -> None:
    browser, driver = shots.browser_paths()
    if browser is None or driver is None:
        msg = "chromium and chromedriver not installed (apt-get install chromium chromium-driver; scripts/setup.sh does it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{msg} (CI must run the browser tests)")
        pytest.skip(msg)


@pytest.fixture(scope="session")
def driver() -> Iterator:
    """One headless chromium for the session (each test loads its own pages)."""
    _need_browser()
    d = shots.headless_chrome()
    try:
        yield d
    finally:
        d.quit()


@pytest.fixture(scope="session")
def ui_url(built) -> Iterator[str]:
    """The UI over the shared home and its reports, on a loopback port."""
    with shots.serve(shots.ui_app(built.home, built.reports)) as url:
        yield url


@pytest.fixture(scope="session")
def shot_dir(tmp_path_factory) -> Path:
    """Where browser tests leave their screenshots (kept with pytest's temp folders for a look after a failure)."""
    return tmp_path_factory.mktemp("screenshots")
