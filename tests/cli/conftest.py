"""Fixtures for the CLI suite: a CliRunner wrapper and one small trained home shared per worker.

Everything is real: the embedded Lite0 weights at 32 px, real digits/MNIST images through
imagedata, a real SQLite registry. Sizes are tiny (5 images per class, 1 epoch, a fixed
or narrow branch range) so the whole suite stays within its time budget.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result

from forkpoint.cli import main

torch.set_num_threads(1)  # two xdist workers on two cores

QUICK = ["--limit-per-class", "5", "--epochs", "1", "--patience", "0"]


@dataclass
class Cli:
    """Runs ``forkpoint`` in-process against one home and one data root."""

    home: Path
    data_root: Path
    added: dict | None = None  # `add-task --json` output of the last task the fixture added

    def __call__(self, *args: str, home: bool = True) -> Result:
        prefix = ["--home", str(self.home)] if home else []
        env = {"FORKPOINT_DATA": str(self.data_root), "FORKPOINT_HOME": None, "FORKPOINT_DB": None, "COLUMNS": "200"}
        return CliRunner().invoke(main, [*prefix, *args], env=env, catch_exceptions=False)

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.exit_code == 0, f"forkpoint {' '.join(args)} failed ({result.exit_code}): {result.output}"
        return result

    def json(self, *args: str) -> dict:
        return json.loads(self.ok(*args, "--json").stdout)


def _one_line_error(result: Result, code: int = 2) -> str:
    """The CLI's error contract: exit code, one line on stderr starting with 'error:' (the last), no traceback.

    Notes and progress (also on stderr) may precede it; stdout stays free of errors.
    """
    assert result.exit_code == code, f"exit {result.exit_code}, wanted {code}: {result.output}"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, f"expected one error line, got: {result.stderr!r}"
    assert result.stderr.rstrip().splitlines()[-1] == errors[0]
    assert errors[0].startswith("error: ") and "Traceback" not in result.output
    assert "error" not in result.stdout
    return errors[0]


@pytest.fixture
def one_line_error():
    """``one_line_error(result, code=2) -> the line``: asserts the CLI's error contract."""
    return _one_line_error


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """Built-in datasets are prepared here on first use (imagedata does it; digits/mnist take ~1 s)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def make_cli(data_root):
    """``make_cli(home) -> Cli`` for fixtures of a wider scope than ``cli`` (e.g. one trained home per module)."""
    return lambda home: Cli(Path(home), data_root)


@pytest.fixture
def cli(tmp_path, data_root) -> Cli:
    """A fresh, uninitialised home."""
    return Cli(tmp_path / "home", data_root)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, data_root) -> Cli:
    """A home with digits v1 (fixed branch), digits v2 (other seed, profiled) and mnist v1.

    Shared by read-only tests; tests that move live pointers or damage files use their own home.
    """
    c = Cli(tmp_path_factory.mktemp("trained") / "home", data_root)
    c.ok("init", "--resolution", "32")
    c.ok("-q", "add-task", "digits", "--data", "digits", "--branch", "14:15", *QUICK)
    c.ok("-q", "add-task", "digits", "--data", "digits", "--candidates", "14:16", "--profile-epochs", "1",
         "--budget-blocks", "1", "--no-probe", "--seed", "1", "--description", "second try", *QUICK)
    c.added = c.json("-q", "add-task", "mnist", "--data", "mnist", "--branch", "blocks.5.3:blocks.6.0",
                     "--val-limit-per-class", "3", *QUICK)
    return c


@pytest.fixture
def own_trained(tmp_path, data_root) -> Cli:
    """A private home with one task (digits v1) that a test may modify."""
    c = Cli(tmp_path / "home", data_root)
    c.ok("init", "--resolution", "32")
    c.ok("-q", "add-task", "digits", "--data", "digits", "--branch", "15:15", *QUICK)
    return c


@pytest.fixture
def clean_env() -> dict[str, str]:
    """Environment for subprocesses: no inherited forkpoint settings, one thread each."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORKPOINT_")}
    env.update(OMP_NUM_THREADS="1", COLUMNS="200")
    return env
