"""``forkpoint stream run`` end to end on a tiny real stream, and its input errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from forkpoint.contract.errors import ConfigError
from forkpoint.scenarios.commands import stream_group


def test_stream_run_writes_a_report(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(stream_group, [
        "run", "--benchmark", "domains", "--tasks", "2", "--per-class", "5", "--test-per-class", "5",
        "--strategy", "subtuning,linear", "--resolution", "32", "--epochs", "1", "--candidates", "14:16",
        "--device", "cpu", "--out", str(out), "--json",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["status"] == "done"
    assert [r["strategy"] for r in report["results"]] == ["subtuning", "linear"]
    assert [t["name"] for t in report["stream"]["tasks"]] == ["domains.mnist", "domains.fashion"]
    for r in report["results"]:
        assert r["forgetting"] == 0.0  # frozen trunk + own heads/branches: neither can forget
        assert len(r["acc_matrix"]) == 2
    assert (out / "heatmap-linear.png").is_file() and (out / "report.md").is_file()


def test_paths_after_the_benchmark_option_are_part_of_the_stream(tmp_path):
    result = CliRunner().invoke(stream_group, ["run", "--benchmark", "domains", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0
    assert "cannot be combined" in str(result.exception)


def test_bad_options_exit_2_with_the_fix():
    runner = CliRunner()
    r = runner.invoke(stream_group, ["run", "--benchmark", "domains", "--strategy", "subtuning,sgd"])
    assert r.exit_code == 2 and "unknown strategy 'sgd'" in r.output
    r = runner.invoke(stream_group, ["run"])
    assert r.exit_code == 2 and "no benchmark" in r.output
    r = runner.invoke(stream_group, ["run", "--benchmark", "split", "--resume"])
    assert r.exit_code == 2 and "--resume needs --out" in r.output
    r = runner.invoke(stream_group, ["run", "--benchmark", "split", "--candidates", "3-4"])
    assert isinstance(r.exception, ConfigError) and r.exception.exit_code == 2 and "LO:HI" in str(r.exception)  # the CLI boundary prints it
