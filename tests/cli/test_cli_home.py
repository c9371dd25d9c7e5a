"""init / info, global options, the error contract and subsystem mounting."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from forkpoint import cli as cli_module
from forkpoint.cli import main


def test_init_registers_the_embedded_lite0_once(cli):
    first = cli.json("init", "--resolution", "32")
    assert first["created"] is True
    assert first["arch"] == "tf_efficientnet_lite0"
    assert first["weights_source"].startswith("embedded:")
    assert first["resolution"] == 32 and first["num_blocks"] == 16
    assert first["trunk_sha256"] is None  # embedded weights are rebuilt by name, not stored
    again = cli.json("init", "--resolution", "32")
    assert again["created"] is False and again["fingerprint"] == first["fingerprint"]
    info = cli.json("info")
    assert info["fingerprint"] == first["fingerprint"] and info["num_tasks"] == 0
    assert info["block_names"][0] == "blocks.0.0"
    assert info["preprocessing"] == first["preprocessing"] == {  # how files become input, for training and predict
        "resize": "shorter-side-centre-crop", "interpolation": "bicubic", "reducing_gap": 2.0,
        "resolution": 32, "mean": first["mean"], "std": first["std"],
    }


def test_init_refuses_a_second_trunk_in_the_same_home(cli, one_line_error):
    cli.ok("init", "--resolution", "32")
    line = one_line_error(cli("init", "--resolution", "48"))
    assert "another --home" in line


def test_init_with_a_weights_file_stores_the_trunk_and_rebuilds_it(cli, tmp_path):
    from safetensors.torch import save_file

    from forkpoint.learner import load_backbone

    lite0 = load_backbone(resolution=32)
    weights = tmp_path / "lite0.safetensors"
    save_file({k: v.contiguous() for k, v in lite0.model.state_dict().items()}, str(weights))
    made = cli.json("init", "--weights", str(weights), "--resolution", "32")
    assert made["weights_source"] == "file:lite0.safetensors"
    assert made["trunk_sha256"] is not None  # a later process rebuilds the trunk from the registry
    assert made["fingerprint"] == lite0.fingerprint()
    weights.unlink()  # the registry copy is all a later process has
    audit = cli.json("audit", "--no-data")
    assert audit["ok"] is True and audit["checked_backbones"] == 1


def test_commands_refuse_an_uninitialised_home_without_creating_it(cli, one_line_error):
    for args in (["tasks"], ["show", "x"], ["audit"], ["add-task", "x", "--data", "digits"]):
        line = one_line_error(cli(*args))
        assert "forkpoint" in line and "init" in line
    assert not cli.home.exists()


def test_home_comes_from_the_environment(tmp_path, data_root):
    home = tmp_path / "env-home"
    runner = CliRunner()
    made = runner.invoke(main, ["init", "--resolution", "32", "--json"], env={"FORKPOINT_HOME": str(home)})
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["home"] == str(home.resolve())
    assert (home / "registry.db").is_file()


@pytest.mark.parametrize("url, words", [
    ("postgresql+psycopg://nobody@127.0.0.1:1/forkpoint", "cannot connect"),
    ("mysql://nobody@localhost/forkpoint", "unsupported database"),
    ("::not a url::", "cannot parse"),
])
def test_unusable_database_urls_are_one_line_errors(cli, one_line_error, url, words):
    line = one_line_error(cli("--db", url, "init", "--resolution", "32"))
    assert words in line


def test_usage_errors_are_one_line(cli, one_line_error):
    assert "--frobnicate" in one_line_error(cli("tasks", "--frobnicate"))
    assert "No such command" in one_line_error(cli("frobnicate"))
    assert "--weights" in one_line_error(cli("init", "--weights", "/no/such/file.safetensors"))


def test_verbose_adds_the_traceback(cli):
    result = cli("-v", "tasks")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "error: no forkpoint registry" in result.stderr


def test_version_and_help():
    runner = CliRunner()
    version = runner.invoke(main, ["--version"])
    assert version.exit_code == 0 and "forkpoint" in version.stdout
    helped = runner.invoke(main, ["--help"])
    assert helped.exit_code == 0
    for command in ("init", "add-task", "tasks", "show", "history", "diff", "predict", "promote", "rollback",
                    "audit", "gc", "demo", "data"):
        assert command in helped.stdout


def test_the_data_group_is_mounted():
    result = CliRunner().invoke(main, ["data", "--help"])
    assert result.exit_code == 0 and "prepare" in result.stdout


def test_a_missing_or_broken_subsystem_does_not_break_the_cli(monkeypatch, tmp_path, one_line_error):
    (tmp_path / "fp_broken_area").mkdir()
    (tmp_path / "fp_broken_area" / "__init__.py").write_text("")
    (tmp_path / "fp_broken_area" / "commands.py").write_text("raise RuntimeError('half-written module')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli_module.SUBSYSTEMS, "ghost", ("fp_missing_area.commands", "ghost_group", "A missing area."))
    monkeypatch.setitem(cli_module.SUBSYSTEMS, "broken", ("fp_broken_area.commands", "broken_group", "A broken area."))
    runner = CliRunner()
    helped = runner.invoke(main, ["--help"])
    assert helped.exit_code == 0 and "ghost" in helped.stdout and "broken" in helped.stdout
    assert "not installed" in one_line_error(runner.invoke(main, ["ghost", "run"]))
    assert "half-written module" in one_line_error(runner.invoke(main, ["broken"]))
    assert runner.invoke(main, ["init", "--help"]).exit_code == 0
    sys.modules.pop("fp_broken_area", None)


@pytest.mark.parametrize("arch, words", [("no_such_model_xyz", "timm cannot build"), ("densenet121", "not supported")])
def test_unknown_or_unsupported_backbones_are_refused(cli, one_line_error, arch, words):
    assert words in one_line_error(cli("init", "--backbone", arch, "--resolution", "32"))
    assert not (cli.home / "registry.db").exists()


def test_thread_count_follows_the_option_or_the_idle_cores(cli, one_line_error):
    import os

    from forkpoint.workflows.threads import pick_threads

    assert pick_threads(3) == 3
    assert 1 <= pick_threads() <= (os.cpu_count() or 1)
    assert "--threads" in one_line_error(cli("--threads", "0", "tasks"))


def test_the_light_constants_match_the_learner():
    """workflows.home avoids importing timm for read commands, so it keeps the embedded weights name."""
    from forkpoint.commands import _shared
    from forkpoint.learner import backbone
    from forkpoint.workflows import home

    assert home.EMBEDDED_WEIGHTS == backbone.EMBEDDED_WEIGHTS
    assert home.DEFAULT_ARCH == _shared.DEFAULT_BACKBONE


# ---- init on a home the OS refuses: exit 2, one line, nothing left behind ------------------------


def _unwritable_home(tmp_path: Path) -> Path:
    """A home the OS refuses to create: under a read-only folder, or (as root, who writes anywhere) under /sys."""
    if os.geteuid() != 0:
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o555)
        return ro / "home"
    home = Path("/sys/forkpoint-test-home")
    try:
        home.mkdir()
    except PermissionError:
        return home
    home.rmdir()
    pytest.skip("running as root and /sys accepts new folders: no read-only place to point a home at")


def test_init_on_a_read_only_home(cli, tmp_path, one_line_error):
    home = _unwritable_home(tmp_path)
    line = one_line_error(replace(cli, home=home)("init", "--resolution", "32"))
    assert f"home {home} is not writable" in line and "pass a writable --home" in line
    assert not home.exists()


def test_init_where_the_home_path_runs_through_a_file(cli, tmp_path, one_line_error):
    (tmp_path / "a-file").write_text("not a folder")
    line = one_line_error(replace(cli, home=tmp_path / "a-file" / "home")("init", "--resolution", "32"))
    assert "cannot be a folder" in line and "part of that path is a file" in line


@pytest.mark.parametrize("shape", ["one name over NAME_MAX", "a path over PATH_MAX"])
def test_init_with_a_home_path_longer_than_the_os_allows(cli, tmp_path, one_line_error, shape):
    base = tmp_path / "base"
    base.mkdir()
    # one 300-character folder name, or 30 nested 200-character names (6,000 characters)
    home = base / ("h" * 300) if shape.startswith("one") else base.joinpath(*["d" * 200] * 30)
    line = one_line_error(replace(cli, home=home)("init", "--resolution", "32"))
    assert "is too long for this file system" in line and "pass a shorter --home" in line
    assert len(line) < 400  # the path is shortened in the message, not printed in full
    assert list(base.iterdir()) == []


def test_init_with_a_malformed_safetensors_file(cli, tmp_path, one_line_error):
    from safetensors.torch import save_file
    import torch

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)  # the 8-byte header length says 18 EB
    good = tmp_path / "good.safetensors"
    save_file({"w": torch.zeros(1000)}, str(good))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:1000])
    for bad in (garbage, truncated):
        home = tmp_path / "new" / "home"
        line = one_line_error(replace(cli, home=home)("init", "--weights", str(bad), "--resolution", "32"))
        assert f"cannot read weights {bad} as safetensors" in line and "safetensors.torch.save_file" in line
        assert not (tmp_path / "new").exists()  # the home was made before the weights were read, and removed
