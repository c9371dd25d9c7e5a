"""scripts/gpu-check.sh must not rot between GPU sessions: its --dry-run (everything but the
CUDA parts, on the CPU) runs here, and its bad options exit 2 with one line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu-check.sh"


def test_dry_run_passes_every_step_and_writes_its_results(tmp_path):
    out = tmp_path / "gpu-check"
    run = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(out), "--budget-s", "400"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] is True
    assert [s["step"] for s in summary["steps"]] == ["env", "tests", "bench"]
    assert all(s["status"] == "passed" for s in summary["steps"]), summary
    env = json.loads((out / "env.json").read_text())
    assert env["torch"] == torch.__version__
    assert env["auto_resolves_to"].startswith("cuda" if torch.cuda.is_available() else "cpu")
    tests_log = (out / "tests.log").read_text()
    assert ("skipped" in tests_log) or ("passed" in tests_log)
    bench = json.loads((out / "bench" / "results.json").read_text())
    assert "throughput" in bench["sections"]


def test_bad_options_exit_2_with_one_line(tmp_path):
    for args, words in ((["--bogus"], "unknown option"), (["--budget-s", "soon"], "whole seconds")):
        run = subprocess.run(["bash", str(SCRIPT), *args, "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
        assert run.returncode == 2
        assert len(run.stderr.strip().splitlines()) == 1 and words in run.stderr
