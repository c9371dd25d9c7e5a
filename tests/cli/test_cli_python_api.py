"""The README's Python API block runs as written (doctest), in a fresh folder with the shared data root."""

from __future__ import annotations

import doctest
import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_python_api_block_runs(tmp_path, data_root, monkeypatch):
    text = README.read_text()
    section = text[text.index("## Python API"):]
    block = re.search(r"```pycon\n(.*?)```", section, re.S).group(1)
    (tmp_path / "data").symlink_to(data_root)
    monkeypatch.chdir(tmp_path)
    for var in ("FORKPOINT_HOME", "FORKPOINT_DB", "FORKPOINT_DATA"):
        monkeypatch.delenv(var, raising=False)
    test = doctest.DocTestParser().get_doctest(block, {}, "README Python API", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=lambda s: print(s, end=""))
    assert runner.failures == 0 and runner.tries >= 10, f"{runner.failures} of {runner.tries} README examples failed"
    assert (tmp_path / "fp-home" / "registry.db").is_file() and os.listdir(tmp_path / "samples")
