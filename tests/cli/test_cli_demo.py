"""The demo, shrunk (4 images per class, 32 px, 1 epoch, 2 profiled blocks): same code path as `make demo`."""

from __future__ import annotations

import re

from forkpoint.workflows.demo import MARKER, prepare_home


def test_demo_adds_three_tasks_and_proves_older_ones_unchanged(cli, tmp_path):
    home = tmp_path / "demo"
    out = cli("demo", "--home", str(home), "--limit-per-class", "4", "--resolution", "32", "--epochs", "1",
              "--profile-epochs", "1", "--candidates", "14:16")
    assert out.exit_code == 0, out.output
    text = out.stdout
    # after task 2: task 1 re-checked; after task 3: tasks 1 and 2
    checks = re.findall(r"older task (\w+)\s*│ unchanged: (\d+) test logits identical bit for bit", text)
    assert checks == [("mnist", "40"), ("mnist", "40"), ("animals", "40")]
    assert "CHANGED" not in text and "DIFFER" not in text
    assert "forkpoint demo: 3 tasks on one frozen Lite0 trunk" in text
    for name in ("mnist", "animals", "digits"):
        # each task serves a branch on the profiled blocks, or the linear probe when no branch beat it
        assert re.search(rf"│ {name}\s+│ {name}\s+│ \d+/\d+/40\s+│ (1[3-5]:1[3-5] \(blocks|linear probe)", text), name
    plots = sorted(home.glob("plots/*/*-profile.png"))
    assert [p.name for p in sorted(plots, key=lambda p: p.name)] == ["animals-profile.png", "digits-profile.png", "mnist-profile.png"]
    assert len(list((home / "samples").glob("*/*.png"))) == 30

    from click.testing import CliRunner

    from forkpoint.cli import main

    listed = CliRunner().invoke(main, ["--home", str(home), "tasks", "--json"], env={"FORKPOINT_DATA": str(cli.data_root)})
    assert listed.exit_code == 0
    assert '"live_version": 1' in listed.stdout and listed.stdout.count('"name"') == 3


def test_demo_never_wipes_a_folder_it_did_not_make(cli, tmp_path, one_line_error):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    assert "not a forkpoint demo home" in one_line_error(cli("demo", "--home", str(precious)))
    assert (precious / "thesis.tex").read_text() == "do not delete"


def test_a_previous_demo_home_is_wiped(tmp_path):
    old = tmp_path / "demo"
    old.mkdir()
    (old / MARKER).write_text("")
    (old / "registry.db").write_text("old")
    fresh = prepare_home(old)
    assert sorted(p.name for p in fresh.iterdir()) == [MARKER]
