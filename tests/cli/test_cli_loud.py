"""Loud instead of silent (issue 18): the traps a new user used to fall into without a word."""

from __future__ import annotations

from dataclasses import replace

from click.testing import CliRunner

from forkpoint.cli import main
QUICK = ["--limit-per-class", "5", "--epochs", "1", "--patience", "0"]  # as tests/cli/conftest.py

SMALL = "mobilenetv3_small_050"  # a supported family with no weights shipped: random unless told otherwise


def test_a_trunk_without_weights_needs_weights_or_an_explicit_random_init(cli, one_line_error):
    line = one_line_error(cli("init", "--backbone", SMALL, "--resolution", "32"))
    assert "--weights PATH" in line and "--random-init" in line
    assert not cli.home.exists()  # nothing half-created
    made = cli.json("init", "--backbone", SMALL, "--random-init", "--resolution", "32")
    assert made["weights_source"] == "random-init" and made["created"] is True


def test_a_mistaken_random_init_home_can_be_initialised_again(cli):
    cli.ok("init", "--backbone", SMALL, "--random-init", "--resolution", "32")
    again = cli("init", "--resolution", "32", "--json")
    assert again.exit_code == 0, again.output
    assert "replaced the random-init" in again.stderr
    info = cli.json("info")
    assert info["arch"] == "tf_efficientnet_lite0" and info["weights_source"].startswith("embedded:")
    assert "retire_backbone" in [e["action"] for e in cli.json("events")["events"]]


def test_plain_init_on_an_existing_home_shows_its_settings(cli):
    first = cli.json("init", "--resolution", "32")
    shown = cli("init", "--json")  # the default would be 224 px: not a conflict, an answer
    assert shown.exit_code == 0, shown.output
    import json

    again = json.loads(shown.stdout)
    assert again["created"] is False and again["resolution"] == 32 and again["fingerprint"] == first["fingerprint"]


def test_a_branch_over_the_budget_warns_and_the_version_keeps_the_warning(cli, tmp_path):
    fresh = replace(cli, data_root=tmp_path / "fresh-data")  # digits is prepared on first use: said so
    fresh.ok("init", "--resolution", "32")
    result = fresh("add-task", "digits", "--data", "digits", "--branch", "0:0", "--max-extra-cost", "30", *QUICK)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: --branch 0:0")]
    assert len(warnings) == 1 and "--max-extra-cost budget of 30%" in warnings[0]
    assert f"preparing built-in dataset digits into {(tmp_path / 'fresh-data' / 'digits').resolve()}" in result.stderr
    notes = fresh.json("show", "digits")["metrics"]["notes"]
    assert any("over the --max-extra-cost budget" in n for n in notes)
    inside = fresh("add-task", "digits", "--data", "digits", "--branch", "15:15", *QUICK)
    assert inside.exit_code == 0 and "warning" not in inside.stderr and "preparing" not in inside.stderr


def test_data_commands_honour_forkpoint_data(tmp_path, monkeypatch):
    import logging

    logger = logging.getLogger("imagedata")  # `data prepare` adds a rich handler: keep it out of later tests
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))
    monkeypatch.setattr(logger, "level", logger.level)
    root = tmp_path / "elsewhere"
    env = {"FORKPOINT_DATA": str(root)}
    runner = CliRunner()
    made = runner.invoke(main, ["data", "prepare", "--only", "digits"], env=env)
    assert made.exit_code == 0, made.output
    assert (root / "digits" / "manifest.json").is_file()
    shown = runner.invoke(main, ["data", "info"], env=env)
    flat = "".join(shown.stdout.split())  # rich wraps and pads a long path in the table title
    assert shown.exit_code == 0 and "digits" in shown.stdout and str(root) in flat


def test_cpu_training_at_a_large_resolution_says_what_it_costs(cli):
    from forkpoint.workflows.home import open_home
    from forkpoint.workflows.tasks import slow_cpu_note

    cli.ok("init", "--resolution", "160")
    with open_home(cli.home) as home:
        line = slow_cpu_note(home, "cpu", 1000)
    assert line is not None and "160 px" in line and "--resolution 64" in line and "~6x" in line
    small = replace(cli, home=cli.home.parent / "small")
    small.ok("init", "--resolution", "32")
    with open_home(small.home) as home:
        assert slow_cpu_note(home, "cpu", 1000) is None
