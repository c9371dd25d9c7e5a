"""Issue 29 (b): evaluate scores a repeated --task once, checks --plot before any work, says which tasks it
scores and why; samples --out and serve --reports follow export --out's folder rule (never created)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from forkpoint.workflows.tutorial_timing import README, tutorial_commands

QUICK = ["--limit-per-class", "5", "--epochs", "1", "--patience", "0"]  # as tests/cli/conftest.py


@pytest.fixture(scope="module")
def two_tasks(make_cli, tmp_path_factory):
    """digits v1 and mnist v1 (both classes 0..9) and a labelled folder named like the tutorial's, 2 images a class."""
    root = tmp_path_factory.mktemp("issue29b")
    c = make_cli(root / "home")
    c.ok("init", "--resolution", "32")
    c.ok("-q", "add-task", "digits", "--data", "digits", "--branch", "15:15", *QUICK)
    c.ok("-q", "add-task", "mnist", "--data", "mnist", "--branch", "15:15", *QUICK)
    c.ok("samples", "--data", "digits", "--out", str(root / "my-digits"), "--per-class", "2", "--layout", "imagefolder")
    return c, root / "my-digits"


def _evaluations(c, task: str) -> list[dict]:
    return [e for e in c.json("history", task)["events"] if e["action"] == "evaluate"]


def test_a_repeated_task_is_scored_once(two_tasks):
    c, folder = two_tasks
    before = len(_evaluations(c, "digits"))
    result = c.ok("evaluate", str(folder), "--task", "digits", "--task", "digits", "--json")
    import json

    out = json.loads(result.stdout)
    assert list(out["tasks"]) == ["digits"] and out["tasks"]["digits"]["images"] == 20
    assert sum(map(sum, out["tasks"]["digits"]["confusion"])) == 20  # not 40: each image counted once
    assert "--task digits given more than once: scored once" in result.stderr
    events = _evaluations(c, "digits")
    assert len(events) == before + 1 and events[-1]["details"]["images"] == 20


@pytest.mark.parametrize("plot, says", [
    ("c.txt", "give a .png file"),
    ("no/such/folder/c.png", "does not exist: create it first"),
    (".", "is a directory"),
])
def test_a_bad_plot_is_refused_before_any_work(two_tasks, tmp_path, monkeypatch, one_line_error, plot, says):
    c, folder = two_tasks
    monkeypatch.chdir(tmp_path)
    before = {t: len(_evaluations(c, t)) for t in ("digits", "mnist")}
    line = one_line_error(c("evaluate", str(folder), "--plot", plot))
    assert "--plot" in line and says in line
    assert {t: len(_evaluations(c, t)) for t in ("digits", "mnist")} == before  # nothing logged
    assert not list(tmp_path.iterdir())  # nothing written


def test_the_scored_tasks_are_named_with_the_reason(two_tasks):
    c, folder = two_tasks
    result = c.ok("evaluate", str(folder), "--json")
    assert ("scoring digits (named like my-digits) and mnist (same class names as the data): pass --task to choose"
            in " ".join(result.stderr.split()))
    one = c.ok("evaluate", str(folder), "--task", "mnist")
    assert "scoring" not in one.stderr  # --task chose: nothing to explain


def test_the_tutorials_evaluate_line_writes_confusion_png(two_tasks, tmp_path, monkeypatch):
    """The README's line, run as written (on the fixture's folder), writes the confusion.png it promises."""
    c, folder = two_tasks
    [line] = [cmd for cmd in tutorial_commands(README.read_text()) if cmd.startswith("forkpoint evaluate ")]
    args = shlex.split(line)[1:]
    assert args[:2] == ["evaluate", "my-digits"] and args[args.index("--plot") + 1] == "confusion.png"
    (tmp_path / "my-digits").symlink_to(folder, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    c.ok(*args)
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["confusion.png"]


def test_samples_out_needs_an_existing_parent_folder(cli, tmp_path, one_line_error):
    line = one_line_error(cli("samples", "--data", "digits", "--out", str(tmp_path / "missing" / "samples")))
    assert f"--out folder {tmp_path / 'missing'} does not exist: create it first" in line
    assert not (tmp_path / "missing").exists()


def test_serve_reports_must_be_an_existing_folder(cli, tmp_path, one_line_error):
    line = one_line_error(cli("serve", "--reports", str(tmp_path / "reports")))
    assert f"--reports folder {tmp_path / 'reports'} does not exist: create it first" in line


def test_audit_report_needs_an_existing_parent_folder(cli, tmp_path, one_line_error):
    line = one_line_error(cli("audit", "--report", str(tmp_path / "missing" / "r.html")))
    assert f"--report folder {tmp_path / 'missing'} does not exist: create it first" in line
    assert not (tmp_path / "missing").exists()
