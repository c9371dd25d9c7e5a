"""The README tutorial's timing run reads the commands a reader would type, and renders a measured line."""

from __future__ import annotations

import pytest

from forkpoint.contract.docblock import REPO
from forkpoint.contract.errors import ConfigError
from forkpoint.workflows.tutorial_timing import BEGIN, END, render, tutorial_commands


def test_the_readme_tutorial_is_read_as_its_commands_without_comments():
    commands = tutorial_commands((REPO / "README.md").read_text())
    assert commands[0].startswith("export FORKPOINT_HOME=")
    assert "forkpoint init --resolution 64" in commands
    assert any(c.endswith("&") and c.startswith("forkpoint serve") for c in commands)
    assert not any("#" in c and c.split("#", 1)[1].startswith(" ") for c in commands)  # trailing comments dropped
    text = (REPO / "README.md").read_text()
    assert BEGIN in text and END in text


def test_a_quoted_hash_stays_and_a_missing_section_is_a_config_error():
    readme = "## Tutorial\n\n```bash\necho 'a # b'   # comment\n\n# only a comment\nforkpoint tasks\n```\n"
    assert tutorial_commands(readme) == ["echo 'a # b'", "forkpoint tasks"]
    with pytest.raises(ConfigError, match="Tutorial"):
        tutorial_commands("# no tutorial here\n")


def test_the_line_names_machine_load_commit_and_slowest_commands():
    rec = {"machine": {"cpu_count": 2, "host_cpu": "AMD EPYC", "load_avg_1m_at_start": 0.12, "date": "2026-12-03T18:00:00",
                       "git_commit": "abc1234"},
           "seconds": 301.0, "steps": [{"command": "forkpoint add-task mnist --data mnist", "seconds": 80.0, "exit_code": 0},
                                       {"command": "forkpoint tasks", "seconds": 3.0, "exit_code": 0}]}
    line = render(rec)
    assert "5.0 minutes" in line and "load 0.1" in line and "abc1234" in line and "`forkpoint add-task mnist` 80 s" in line
