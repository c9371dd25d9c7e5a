"""The installed `forkpoint` entry point, as a user runs it: init -> add-task -> predict -> audit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from forkpoint.workflows.samples import write_samples

FORKPOINT = Path(sys.executable).parent / "forkpoint"


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(FORKPOINT), *args], env=env, capture_output=True, text=True, timeout=300)


def test_installed_cli_init_add_task_predict_audit(tmp_path, data_root, clean_env):
    assert FORKPOINT.is_file(), "forkpoint is not installed in the venv: run `make setup`"
    env = {**clean_env, "FORKPOINT_HOME": str(tmp_path / "home"), "FORKPOINT_DATA": str(data_root)}

    made = run("init", "--resolution", "32", "--json", env=env)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["created"] is True

    added = run("add-task", "digits", "--data", "digits", "--branch", "15:15", "--epochs", "1",
                "--limit-per-class", "5", env=env)
    assert added.returncode == 0, added.stderr
    assert "digits v1 registered (live)" in added.stdout and "15:15 (blocks.6.0)" in added.stdout

    samples = tmp_path / "samples"
    write_samples("digits", samples, data_root=data_root)
    predicted = run("predict", str(samples / "3_0.png"), str(samples / "8_0.png"), "--json", env=env)
    assert predicted.returncode == 0, predicted.stderr
    out = json.loads(predicted.stdout)
    assert out["versions"] == {"digits": 1}
    assert [Path(i["path"]).name for i in out["images"]] == ["3_0.png", "8_0.png"]
    assert all(i["tasks"]["digits"]["label"] in [str(d) for d in range(10)] for i in out["images"])

    audited = run("audit", env=env)
    assert audited.returncode == 0, audited.stderr
    assert "audit: OK" in audited.stdout
