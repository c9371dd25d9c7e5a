"""Every ``--json`` key the README documents is what the command prints (issue 18: they had drifted apart)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
QUICK = ["--limit-per-class", "5", "--epochs", "1", "--patience", "0"]  # as tests/cli/conftest.py


def _strip_parens(text: str) -> str:
    """Drop parenthesised remarks (nested too): they describe nested keys, not top-level ones."""
    out, depth = [], 0
    for ch in text:
        depth += ch == "("
        if depth == 0:
            out.append(ch)
        depth -= ch == ")" and depth > 0
    return "".join(out)


def _names(text: str) -> list[str]:
    return [t for t in re.findall(r"`([^`]+)`", text) if re.fullmatch(r"[a-z_]+", t)]


def documented() -> dict[str, dict[str, list[str]]]:
    """README's key table: command -> {"top": keys, "each": keys of list items, "plus": command-only keys}."""
    text = README.read_text()
    table = text[text.index("| command | top-level keys |"):]
    rows: dict[str, dict[str, list[str]]] = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("| `"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        optional = re.sub(r"`[a-z_]+` \(with [^)]*\)", "", cells[1])  # printed only with an option
        keys = _strip_parens(optional.removeprefix("one version:"))
        keys, _, plus = keys.partition("; plus")
        top, _, each = keys.partition("list of")
        for command in re.findall(r"`([^`]+)`", cells[0]):
            rows[command] = {"top": _names(top), "each": _names(each), "plus": _names(plus)}
    return rows


def test_the_table_is_parsed():
    rows = documented()
    assert {"init", "info", "add-task", "tasks", "show", "history", "diff", "events", "predict", "predict --route",
            "evaluate", "promote", "rollback", "audit", "gc"} <= set(rows)
    assert rows["tasks"]["each"][:2] == ["name", "live_version"] and rows["init"]["plus"] == ["created", "num_tasks"]


@pytest.fixture
def outputs(own_trained, tmp_path) -> dict[str, dict]:
    """Every command's --json output on a real home (a private one: promote/rollback/evaluate write events)."""
    c = own_trained
    out: dict[str, dict] = {"add-task": c.json("-q", "add-task", "digits", "--data", "digits", "--branch", "15:15",
                                               "--seed", "1", "--description", "v2", *QUICK)}
    images = tmp_path / "imgs"
    c.ok("samples", "--data", "digits", "--out", str(images), "--per-class", "1", "--layout", "imagefolder")
    for command, args in {
        "init": ["init"], "info": ["info"], "tasks": ["tasks"], "show": ["show", "digits"],
        "history": ["history", "digits"], "diff": ["diff", "digits", "1", "2"], "events": ["events"],
        "predict": ["predict", str(images)], "predict --route": ["predict", "--route", str(images)],
        "evaluate": ["evaluate", str(images)], "rollback": ["rollback", "digits"], "promote": ["promote", "digits", "2"],
        "audit": ["audit", "--no-data"], "gc": ["gc", "--dry-run"],
    }.items():
        out[command] = c.json(*args)
    return out


def test_every_documented_key_is_printed(outputs):
    rows = documented()
    for command, got in outputs.items():
        row = rows[command]
        missing = [k for k in row["top"] if k not in got]
        assert not missing, f"{command} --json lacks documented keys {missing}"
        plus = [k for k in row["plus"] if k in got]
        assert not row["plus"] or len(plus) == 1, f"{command}: exactly one of {row['plus']} expected"
        if row["each"]:
            listed = next(v for v in got.values() if isinstance(v, list) and v and isinstance(v[0], dict))
            lacking = [k for k in row["each"] if k not in listed[0]]
            assert not lacking, f"{command} --json list items lack documented keys {lacking}"
    assert isinstance(outputs["history"]["task"], dict) and isinstance(outputs["promote"]["version"], dict)
    assert outputs["promote"]["live_after"] == 2 and outputs["rollback"]["live_after"] == 1
    assert [v["state"] for v in outputs["history"]["versions"]] == ["previously live", "live"]  # read before rollback


def test_states_say_live_previously_live_or_staged(own_trained):
    from dataclasses import replace

    from forkpoint.workflows.home import open_home
    from forkpoint.workflows.render import lifecycle

    with open_home(own_trained.home) as home:
        rec = home.registry.show("digits", 1)
        assert lifecycle(rec, home.registry.ever_live("digits")) == "live"
        assert lifecycle(replace(rec, live=False), {1}) == "previously live"
        assert lifecycle(replace(rec, live=False, status="staged"), set()) == "staged"
        assert lifecycle(replace(rec, live=False, status="staged"), {1}) == "previously live"  # promoted later
    assert "digits v1 (live)" in own_trained.ok("show", "digits").stdout


def test_history_and_diff_show_descriptions_and_accuracies_with_their_test_sizes(trained):
    table = trained.ok("diff", "digits", "1", "2").stdout
    assert "v1 (no description) -> v2 (second try)" in table
    assert re.search(r"metrics\.test_acc +│ \d+\.\d% of \d+", table)  # rounded, with the test-set size
    assert not re.search(r"0\.\d{5,}", table)  # no unrounded floats
    history = trained.ok("history", "digits").stdout
    assert "second try" in history and "previously live" in history and " live " in history
