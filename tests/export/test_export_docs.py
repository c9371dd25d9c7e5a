"""docs/export.md's onnxruntime snippet runs as written and reproduces forkpoint's logits from the metadata alone."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import numpy as np

DOC = Path(__file__).resolve().parents[2] / "docs" / "export.md"


def _snippet() -> str:
    block = re.search(r"<!-- export:snippet:begin -->\s*```python\n(.*?)```\s*<!-- export:snippet:end -->", DOC.read_text(), re.S)
    assert block, "docs/export.md lost its marked onnxruntime snippet"
    return block.group(1)


def test_docs_snippet_matches_forkpoint(exported, tmp_path, monkeypatch, capsys):
    (tmp_path / "model.onnx").symlink_to(exported.onnx)
    (tmp_path / "samples").symlink_to(exported.samples, target_is_directory=True)
    script = tmp_path / "snippet.py"
    script.write_text(_snippet())
    monkeypatch.chdir(tmp_path)
    ns = runpy.run_path(str(script))
    printed = capsys.readouterr().out.splitlines()

    x, want = exported.live_logits()
    assert np.abs(ns["batch"] - x.numpy()).max() <= 1e-6  # Pillow-only preprocessing == forkpoint's load_inputs
    for task, logits in zip(ns["tasks"], ns["outputs"]):
        assert np.abs(logits - want[task["task"]]).max() <= 1e-4
    assert [line.split(":")[0] for line in printed] == ["digits v1", "mnist v1"]
    assert len(printed[0].split(": ")[1].split(", ")) == len(exported.images)


def test_docs_list_every_json_key(exported):
    text = DOC.read_text()
    section = text[text.index("## JSON report"):]
    section = section[:section.index("\n## ", 3)]
    for _ in range(2):  # parenthesised remarks describe nested keys
        section = re.sub(r"\([^()]*\)", "", section)
    documented = {k for k in re.findall(r"`([a-z][a-z0-9_]*)`", section)}
    assert documented == set(exported.report), f"docs/export.md and `export --json` differ: {documented ^ set(exported.report)}"
