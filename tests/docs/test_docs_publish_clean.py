"""Figures only from clean commits: the commit is what ``git describe --always --dirty`` says, and a
dirty tree is refused under --publish unless FORKPOINT_ALLOW_DIRTY=1 (then recorded as -dirty)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from forkpoint.contract.docblock import ALLOW_DIRTY_ENV, git_describe, publish_block, require_publishable
from forkpoint.contract.errors import ConfigError


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    (repo / "page.md").write_text("a\n<!-- b -->\nold\n<!-- e -->\n")
    subprocess.run([*git, "add", "page.md"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    return repo


def test_a_dirty_tree_is_refused_unless_allowed_and_then_recorded_dirty(tmp_path, monkeypatch):
    repo = _repo(tmp_path)
    monkeypatch.delenv(ALLOW_DIRTY_ENV, raising=False)
    clean = require_publishable(repo)
    assert clean == git_describe(repo) and not clean.endswith("-dirty")
    (repo / "page.md").write_text("edited by hand\n")
    with pytest.raises(ConfigError, match="uncommitted changes") as e:
        require_publishable(repo)
    assert e.value.exit_code == 2 and "\n" not in str(e.value) and ALLOW_DIRTY_ENV in str(e.value)
    monkeypatch.setenv(ALLOW_DIRTY_ENV, "1")
    assert require_publishable(repo) == f"{clean}-dirty"


def test_results_record_git_describe_as_the_code_finds_it():
    from forkpoint.benchmarks.machine import _git_commit

    assert _git_commit() == git_describe()


def test_publishing_outside_the_checkout_is_not_checked(tmp_path, monkeypatch):
    monkeypatch.delenv(ALLOW_DIRTY_ENV, raising=False)
    page = tmp_path / "page.md"
    page.write_text("<!-- b -->\nold\n<!-- e -->\n")
    publish_block(page, "<!-- b -->", "<!-- e -->", "new")
    assert page.read_text() == "<!-- b -->\nnew\n<!-- e -->\n"
