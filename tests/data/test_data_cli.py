"""`forkpoint data prepare|info` as the CLI mounts them."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from forkpoint.imagedata.commands import data_group
from forkpoint.imagedata.versioning import dvc_md5


def test_prepare_and_info(tmp_path: Path):
    runner = CliRunner()
    root = tmp_path / "data"
    res = runner.invoke(data_group, ["prepare", "--root", str(root), "--only", "digits", "--limit-per-class", "5"])
    assert res.exit_code == 0, res.output
    assert "prepared 1 dataset(s)" in res.output and (root / "digits" / "manifest.json").is_file()
    res = runner.invoke(data_group, ["info", "--root", str(root)])
    assert res.exit_code == 0, res.output
    assert "digits" in res.output and dvc_md5(root / "digits") in res.output


def test_cli_rejects_bad_options(tmp_path: Path):
    runner = CliRunner()
    res = runner.invoke(data_group, ["prepare", "--root", str(tmp_path), "--only", "cifar"])
    assert res.exit_code == 2 and "cifar" in res.output
    res = runner.invoke(data_group, ["prepare", "--root", str(tmp_path), "--limit-per-class", "1"])
    assert res.exit_code == 2
    res = runner.invoke(data_group, ["info", "--root", str(tmp_path / "empty")])
    assert res.exit_code == 0 and "no prepared datasets" in res.output
