"""The README's demo paragraph is generated from the committed demo record, never typed."""

from __future__ import annotations

import json

import pytest

from forkpoint.contract.errors import ConfigError
from forkpoint.workflows import demo_figures


def test_the_readme_paragraph_is_what_the_committed_record_renders_to():
    rec = json.loads(demo_figures.RESULTS.read_text())
    readme = demo_figures.README.read_text()
    block = readme.split(demo_figures.BEGIN, 1)[1].split(demo_figures.END, 1)[0].strip()
    assert block == demo_figures.render(rec)
    for t in rec["tasks"]:
        assert f"{100 * t['test_acc']:.1f}% ({t['task']})" in block


def test_publishing_replaces_only_the_block(tmp_path):
    rec = json.loads(demo_figures.RESULTS.read_text())
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{demo_figures.BEGIN}\nold figures\n{demo_figures.END}\noutro\n")
    demo_figures.publish(rec, tmp_path / "demo.json", readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\noutro\n") and "old figures" not in text
    assert json.loads((tmp_path / "demo.json").read_text()) == rec
    readme.write_text("no markers here")
    with pytest.raises(ConfigError, match="README.md has no generated block"):
        demo_figures.publish(rec, tmp_path / "demo.json", readme)
