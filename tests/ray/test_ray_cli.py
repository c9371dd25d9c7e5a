"""``forkpoint add-task --workers 2``: a worker that always dies fails the command with nothing registered."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from forkpoint.cli import main
from forkpoint.learner.parallel import KILL_ENV

pytestmark = pytest.mark.ray


def test_add_task_whose_worker_always_dies_exits_1_and_registers_nothing(ray_cluster, tmp_path):
    env = {"FORKPOINT_DATA": str(tmp_path / "data"), "FORKPOINT_HOME": None, "FORKPOINT_DB": None, "COLUMNS": "200"}
    run = lambda *args, **kw: CliRunner().invoke(main, ["--home", str(tmp_path / "home"), *args], env={**env, **kw},
                                                 catch_exceptions=False)
    assert run("init", "--resolution", "32").exit_code == 0
    result = run("add-task", "digits", "--data", "digits", "--limit-per-class", "5", "--epochs", "1", "--patience", "0",
                 "--candidates", "14:16", "--workers", "2", **{KILL_ENV: "profile:15:16"})
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "profile:15:16 died 3 time(s)" in errors[0] and "Traceback" not in result.output
    tasks = run("tasks", "--json")
    # Ray runs inside this test process (a real `forkpoint tasks` is a process of its own), and its driver may
    # print the dead worker's notice to our stdout late, during this command: read the JSON document itself.
    assert tasks.exit_code == 0 and json.loads(tasks.stdout[tasks.stdout.index("{"):])["tasks"] == []
    events = run("events", "--json")
    assert events.exit_code == 0 and '"digits"' not in events.stdout  # no version, no pointer, no audit event
